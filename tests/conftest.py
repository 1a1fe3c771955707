"""Shared fixtures: a migrated database per test (SQLite and PostgreSQL), the sandbox servers,
and a runtime wired to both."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from mls_sync.config import Settings
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "MLS_SYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_url(database: str) -> str:
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test session; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """One migrated PostgreSQL database per test session; each test gets a clone of it."""
    name = f"mls_sync_tpl_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    asyncio.run(_migrate(_postgres_url(name)))
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated, empty database for one test, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    name = f"mls_sync_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _postgres_url(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def reso() -> Iterator[ResoSandbox]:
    yield ResoSandbox(tokens=["mls-token"])


@pytest.fixture
def reso_url(reso: ResoSandbox) -> Iterator[str]:
    with BackgroundServer(reso.app) as server:
        yield server.url


@pytest.fixture
def platforms() -> PlatformSandbox:
    return PlatformSandbox()


@pytest.fixture
def platforms_url(platforms: PlatformSandbox) -> Iterator[str]:
    with BackgroundServer(platforms.app) as server:
        yield server.url


@pytest.fixture
def settings(tmp_path: Path, platforms_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        token_keys=TokenCipher.generate_key(),
        facebook_graph_url=platforms_url,
        linkedin_api_url=platforms_url,
        x_api_url=platforms_url,
        mls_timeout_seconds=2.0,
        mls_requests_per_second=50.0,
        mls_retry_backoff_seconds=0.01,
    )


@pytest.fixture
async def runtime(settings: Settings, db: Database) -> AsyncIterator[Runtime]:
    async with open_runtime(settings, db=db) as opened:
        yield opened
