"""Alembic migrations build the schema on an empty SQLite and PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect

from conftest import _admin, _postgres_url
from mls_sync.store.database import Database
from mls_sync.store.migrate import current_revision, upgrade
from mls_sync.store.models import Base

# Bump when a migration is added: the tests prove the chain reaches it.
HEAD_REVISION = "0004"
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
