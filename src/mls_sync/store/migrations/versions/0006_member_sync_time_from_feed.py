"""A member's last sync is its feed's last run: `mls_connections.last_sync_at` goes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 07:00:00

A member's listings are brought up to date by its feed's run, so when the member was last
synced is when its feed last ran successfully (`mls_feeds.last_run_at`, which 0005 filled from
every connection's `last_sync_at`). Writing the time on every member too cost each run an
UPDATE of all its members (on DynamoDB, one write per member: 1,000 writes for an idle cycle
of a 1,000-agent feed), and the two could disagree.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mls_connections", schema=None) as batch_op:
        batch_op.drop_column("last_sync_at")


def downgrade() -> None:
    with op.batch_alter_table("mls_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE mls_connections SET last_sync_at ="
        " (SELECT last_run_at FROM mls_feeds WHERE mls_feeds.id = mls_connections.feed_id)"
    )
