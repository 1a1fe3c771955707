"""A vendor's suspension of a feed's credential: `mls_feeds.suspended_until`

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 18:00:00

MLS Grid answers a token over its limits with 429 and suspends it; sending more keeps the
usage high and the suspension on. The feed now records until when nothing may be sent (the
profile's cool-down, or the vendor's own reset if later), so every worker and every restart
knows it, and the feed's page shows it. Existing feeds start with none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mls_feeds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suspended_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mls_feeds", schema=None) as batch_op:
        batch_op.drop_column("suspended_until")
