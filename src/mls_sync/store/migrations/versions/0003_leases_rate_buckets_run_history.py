"""connection leases, shared rate buckets, run history details

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 09:00:00

- `connection_leases`: one row per connection being synced, with an expiry, so one sync of a
  connection runs at a time across processes and machines (a holder that dies lets its lease
  lapse and someone else takes it over).
- `rate_buckets`: one GCRA row per request-budget key (an MLS credential and a window), so many
  workers share one budget per credential.
- `sync_runs.state`, `status_changes` and `progress`: run history shows what a run changed and
  how far a queued or running run has got.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connection_leases",
        sa.Column("connection_id", sa.String(32), primary_key=True),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(300), primary_key=True),
        # GCRA's theoretical arrival time, seconds since the epoch.
        sa.Column("tat", sa.Float(), nullable=False),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        # Runs recorded before this revision are all finished.
        batch_op.add_column(
            sa.Column("state", sa.String(20), nullable=False, server_default="finished")
        )
        batch_op.add_column(
            sa.Column("status_changes", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("progress", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("parent_id", sa.String(32), nullable=True))
        batch_op.create_index("ix_sync_runs_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_runs_parent_id")
        batch_op.drop_column("parent_id")
        batch_op.drop_column("progress")
        batch_op.drop_column("status_changes")
        batch_op.drop_column("state")
    op.drop_table("rate_buckets")
    op.drop_table("connection_leases")
