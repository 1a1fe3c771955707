"""MLS feeds: replicate each MLS once; a connection becomes a membership

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:00:00

- `mls_feeds`: one MLS as one credential sees it (vendor profile, base URL, encrypted
  credentials, state, replication bookmark, cadence). Every existing connection becomes a
  *private* feed of its owner with the same id, credentials, profile and state.
- `feed_records`: each feed's local replica (key fields only).
- `mls_connections` keeps who, which feed, name and state; `listings.feed_id` is the
  connection's feed, so one query finds every holder of a changed record.
- `unpublish_jobs.claimed_by`: whose drain holds a job's claim, so whoever takes over a dead
  process's feed takes over its claims at once instead of waiting them out.

Listings, their history, posts, unpublish jobs and runs are kept as they are. The replication
bookmark is not copied: it said what had been applied to the held listings, and a feed's
replica needs every record, so each migrated feed loads once (for 100,000 records in pages of
5,000: 20 requests) and replicates from there. Applying is idempotent (the same status is no
change), so the load re-applies nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOVED = (
    "provider",
    "base_url",
    "auth_kind",
    "credentials_encrypted",
    "key_field",
    "filter_style",
    "status_overrides",
    "profile_overrides",
    "bookmark_timestamp",
    "bookmark_keys",
    "last_full_check_at",
    "entity_event_sequence",
)


def upgrade() -> None:
    op.create_table(
        "mls_feeds",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "owner_user_id",
            sa.String(32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(50), nullable=False),
        sa.Column("base_url", sa.String(500), nullable=False),
        sa.Column("auth_kind", sa.String(30), nullable=False),
        sa.Column("credentials_encrypted", sa.Text(), nullable=False),
        sa.Column("key_field", sa.String(50), nullable=True),
        sa.Column("filter_style", sa.String(10), nullable=True),
        sa.Column("status_overrides", sa.JSON(), nullable=False),
        sa.Column("profile_overrides", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("state_message", sa.Text(), nullable=True),
        sa.Column("cadence_seconds", sa.Integer(), nullable=False),
        sa.Column("bookmark_timestamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bookmark_keys", sa.JSON(), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reconciled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entity_event_sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mls_feeds_owner_user_id", "mls_feeds", ["owner_user_id"])
    op.create_table(
        "feed_records",
        sa.Column(
            "feed_id",
            sa.String(32),
            sa.ForeignKey("mls_feeds.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("listing_key", sa.String(200), primary_key=True),
        sa.Column("listing_id", sa.String(100), nullable=True),
        sa.Column("standard_status", sa.String(50), nullable=True),
        sa.Column("mls_status", sa.String(100), nullable=True),
        sa.Column("modification_timestamp", sa.DateTime(timezone=True), nullable=True),
        sa.Column("list_agent_mls_id", sa.String(100), nullable=True),
        sa.Column("list_office_mls_id", sa.String(100), nullable=True),
        sa.Column("gone", sa.Boolean(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feed_records_listing_id", "feed_records", ["feed_id", "listing_id"])
    op.create_index("ix_feed_records_agent", "feed_records", ["feed_id", "list_agent_mls_id"])
    op.create_index("ix_feed_records_office", "feed_records", ["feed_id", "list_office_mls_id"])

    empty_list = "'[]'" if op.get_bind().dialect.name == "sqlite" else "CAST('[]' AS JSON)"
    op.execute(
        "INSERT INTO mls_feeds (id, owner_user_id, name, provider, base_url, auth_kind,"
        " credentials_encrypted, key_field, filter_style, status_overrides, profile_overrides,"
        " state, state_message, cadence_seconds, bookmark_timestamp, bookmark_keys, loaded_at,"
        " reconciled_at, entity_event_sequence, last_run_at, created_at)"
        " SELECT id, user_id, name, provider, base_url, auth_kind, credentials_encrypted,"
        " key_field, filter_style, status_overrides, profile_overrides, state, state_message,"
        f" 900, NULL, {empty_list}, NULL, NULL, NULL, last_sync_at, created_at"
        " FROM mls_connections"
    )

    with op.batch_alter_table("mls_connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_id", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("agent_mls_id", sa.String(100), nullable=True))
        batch_op.add_column(sa.Column("office_mls_id", sa.String(100), nullable=True))
    op.execute("UPDATE mls_connections SET feed_id = id")
    with op.batch_alter_table("mls_connections", schema=None) as batch_op:
        batch_op.alter_column("feed_id", existing_type=sa.String(32), nullable=False)
        batch_op.create_foreign_key(
            "fk_mls_connections_feed_id", "mls_feeds", ["feed_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_mls_connections_feed_id", ["feed_id"])
        for column in _MOVED:
            batch_op.drop_column(column)

    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_id", sa.String(32), nullable=True))
    op.execute("UPDATE listings SET feed_id = mls_connection_id")
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.alter_column("feed_id", existing_type=sa.String(32), nullable=False)
        batch_op.create_index("ix_listings_feed_key", ["feed_id", "listing_key"])

    with op.batch_alter_table("unpublish_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(100), nullable=True))
        batch_op.create_index("ix_unpublish_jobs_claimed_by", ["claimed_by"])

    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_run_id", sa.String(32), nullable=True))
        batch_op.create_index("ix_sync_runs_feed_run_id", ["feed_run_id"])


def downgrade() -> None:
    raise NotImplementedError(
        "feeds cannot be split back into connections: restore the pre-upgrade backup"
    )
