"""Alembic migrations build the schema on an empty SQLite and PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from conftest import _admin, _postgres_url
from mls_sync.store.database import Database
from mls_sync.store.migrate import current_revision, upgrade
from mls_sync.store.models import Base

# Bump when a migration is added: the tests prove the chain reaches it.
HEAD_REVISION = "0008"
EXPECTED_TABLES = {
    "users",
    "mls_connections",
    "listings",
    "listing_status_history",
    "platform_connections",
    "posts",
    "unpublish_jobs",
    "sync_runs",
    "connection_leases",
    "rate_buckets",
    "mls_feeds",
    "feed_records",
}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def _upgrade_and_inspect(url: str) -> tuple[set[str], str | None]:
    db = Database(url)
    try:
        await upgrade(db)
        await upgrade(db)  # a second upgrade is a no-op
        return await _tables(db), await current_revision(db)
    finally:
        await db.dispose()


async def test_upgrade_on_an_empty_sqlite_database(tmp_path: Path) -> None:
    tables, revision = await _upgrade_and_inspect(f"sqlite:///{tmp_path / 'empty.db'}")
    assert tables >= EXPECTED_TABLES
    assert revision == HEAD_REVISION


@pytest.mark.postgres
async def test_upgrade_on_an_empty_postgres_database(postgres_template: str) -> None:
    name = f"mls_sync_empty_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        tables, revision = await _upgrade_and_inspect(_postgres_url(name))
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert tables >= EXPECTED_TABLES
    assert revision == HEAD_REVISION


def test_models_and_migrations_agree(tmp_path: Path) -> None:
    """Autogenerate finds nothing to add: every model change comes with its migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    async def diff() -> list:
        db = Database(f"sqlite:///{tmp_path / 'cmp.db'}")
        try:
            await upgrade(db)
            async with db.engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
                )
        finally:
            await db.dispose()

    assert asyncio.run(diff()) == []


def test_cli_db_upgrade_creates_the_default_sqlite_database(tmp_path: Path) -> None:
    env = {**os.environ, "MLS_SYNC_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "mls_sync.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mls-sync.db").exists()
    assert HEAD_REVISION in done.stderr


# Today's data, as revision 0004 stored it: one user, one connection with its credentials and
# replication bookmark, a listing with history, a post and its unpublish job, and a run.
_ROWS_AT_0004 = [
    "INSERT INTO users (id, email, created_at) VALUES ('u1', 'agent@example.com', :now)",
    "INSERT INTO mls_connections (id, user_id, name, provider, base_url, auth_kind,"
    " credentials_encrypted, key_field, filter_style, status_overrides, state, bookmark_keys,"
    " profile_overrides, bookmark_timestamp, last_full_check_at, last_sync_at, created_at)"
    " VALUES ('c1', 'u1', 'Main MLS', 'mlsgrid', 'https://api.mlsgrid.com/v2', 'bearer',"
    " 'sealed-token', 'ListingId', 'in', '{\"Closed\": \"sold\"}', 'active', '[\"K9\"]',"
    ' \'{"originating_system_name": "mred"}\', :now, :now, :now, :now)',
    "INSERT INTO listings (id, user_id, mls_connection_id, mls_number, listing_key, status,"
    " created_at, updated_at) VALUES ('l1', 'u1', 'c1', 'MLS-1', 'K1', 'pending', :now, :now)",
    "INSERT INTO listing_status_history (listing_id, old_status, new_status, source, at)"
    " VALUES ('l1', 'active', 'pending', 'mls_sync', :now)",
    "INSERT INTO posts (id, listing_id, platform, platform_post_id, status, created_at)"
    " VALUES ('p1', 'l1', 'facebook', 'fb-1', 'published', :now)",
    "INSERT INTO unpublish_jobs (id, post_id, attempts, next_attempt_at, created_at)"
    " VALUES ('j1', 'p1', 0, :now, :now)",
    "INSERT INTO sync_runs (id, trigger, scope, scope_id, user_id, started_at, totals, errors,"
    " state, status_changes, progress) VALUES ('r1', 'cron', 'connection', 'c1', 'u1', :now,"
    " '{}', '[]', 'finished', '[]', '{}')",
]


async def _columns(db: Database, table: str, wanted: tuple[str, ...]) -> set[str]:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(
            lambda c: {col["name"] for col in inspect(c).get_columns(table)}
        )
    return names & set(wanted)


async def _migrate_todays_data(url: str) -> dict[str, Any]:
    from sqlalchemy import text

    from mls_sync.store.models import MlsConnection, MlsFeed

    db = Database(url)
    try:
        await upgrade(db, "0004")
        async with db.engine.begin() as conn:
            for statement in _ROWS_AT_0004:
                await conn.execute(text(statement), {"now": datetime.now(UTC)})
        await upgrade(db)
        async with db.transaction() as session:
            feed = await session.get(MlsFeed, "c1")
            connection = await session.get(MlsConnection, "c1")
            assert feed is not None and connection is not None
            held = await session.listings.held_in_feed(feed.id, ["K1"])
            return {
                "feed": {
                    name: getattr(feed, name)
                    for name in (
                        "owner_user_id",
                        "name",
                        "provider",
                        "base_url",
                        "credentials_encrypted",
                        "key_field",
                        "filter_style",
                        "status_overrides",
                        "profile_overrides",
                        "state",
                        "bookmark_timestamp",
                        "loaded_at",
                    )
                },
                "connection": (connection.user_id, connection.feed_id, connection.name),
                # 0005 moved the connection's last sync to its feed; 0006 dropped the copy.
                "last synced": feed.last_run_at is not None,
                "member columns": sorted(
                    await _columns(db, "mls_connections", ("last_sync_at", "feed_id"))
                ),
                "held": [(listing.id, listing.status) for listing in held],
                "history": len(await session.listings.history("l1")),
                "posts": [p.status for p in await session.posts.of_listing("l1")],
                "jobs": len(await session.outbox.due(now=datetime.now(UTC) + timedelta(1))),
                "runs": [r.id for r in await session.runs.newest(user_id="u1")],
            }
    finally:
        await db.dispose()


_AFTER = {
    "feed": {
        "owner_user_id": "u1",
        "name": "Main MLS",
        "provider": "mlsgrid",
        "base_url": "https://api.mlsgrid.com/v2",
        "credentials_encrypted": "sealed-token",
        "key_field": "ListingId",
        "filter_style": "in",
        "status_overrides": {"Closed": "sold"},
        "profile_overrides": {"originating_system_name": "mred"},
        "state": "active",
        # The replica needs every record: the feed loads once, then replicates from there.
        "bookmark_timestamp": None,
        "loaded_at": None,
    },
    "connection": ("u1", "c1", "Main MLS"),
    "last synced": True,
    "member columns": ["feed_id"],
    "held": [("l1", "pending")],
    "history": 1,
    "posts": ["published"],
    "jobs": 1,
    "runs": ["r1"],
}


async def test_upgrade_turns_each_connection_into_a_private_feed_keeping_its_data(
    tmp_path: Path,
) -> None:
    assert await _migrate_todays_data(f"sqlite:///{tmp_path / 'today.db'}") == _AFTER


@pytest.mark.postgres
async def test_upgrade_on_postgres_turns_each_connection_into_a_private_feed(
    postgres_template: str,
) -> None:
    name = f"mls_sync_today_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        assert await _migrate_todays_data(_postgres_url(name)) == _AFTER
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
