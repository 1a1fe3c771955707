"""mls replication and profiles

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 02:30:12.300983
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mls_connections", schema=None) as batch_op:
        # Existing connections keep their profile's defaults: an empty override object.
        batch_op.add_column(
            sa.Column("profile_overrides", sa.JSON(), nullable=False, server_default="{}")
        )
        batch_op.add_column(
            sa.Column("last_full_check_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("entity_event_sequence", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mls_connections", schema=None) as batch_op:
        batch_op.drop_column("entity_event_sequence")
        batch_op.drop_column("last_full_check_at")
        batch_op.drop_column("profile_overrides")
