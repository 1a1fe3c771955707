"""Signing out of the dashboard ends the sign-in on the server: `users.web_sessions_ended_at`

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 11:00:00

A dashboard sign-in is a signed cookie, valid for its age limit wherever it is kept. Signing
out now records the instant on the user, and every cookie signed before it is refused, so a
copied cookie stops working at sign-out instead of 12 hours later. Existing users start with
none (every sign-in valid until its age limit, as before).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("web_sessions_ended_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("web_sessions_ended_at")
