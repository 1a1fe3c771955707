"""platform connection logins and token care

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:00:00

- `platform_connections.login`: which login an Instagram connection came from (`facebook`:
  a Page token on graph.facebook.com, which can delete media; `instagram`: Instagram Login,
  which cannot). Existing Instagram connections were made through Instagram Login.
- `tokens_checked_at`: when the connection's tokens were last refreshed or verified ahead of
  need, so every run over everyone looks at each connection about once a day, not every run.
- `expiry_warned_at`: when MlsSyncPlatformTokenExpiring last fired for the stored expiry, so a
  token that cannot be refreshed is announced once, not every 15 minutes for a week.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("platform_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("login", sa.String(20), nullable=True))
        batch_op.add_column(
            sa.Column("tokens_checked_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("expiry_warned_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE platform_connections SET login = 'instagram' WHERE platform = 'instagram'")


def downgrade() -> None:
    with op.batch_alter_table("platform_connections", schema=None) as batch_op:
        batch_op.drop_column("expiry_warned_at")
        batch_op.drop_column("tokens_checked_at")
        batch_op.drop_column("login")
