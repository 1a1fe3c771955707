"""Shared fixtures: a migrated database per test (SQLite and PostgreSQL), the sandbox servers,
an HTTP client for the platform clients, the test's clock, and a runtime wired to all of it.

Helpers live beside this file: `factories` (seeding, the `Clock`), `polling` (`eventually`),
`api_support` and `worker_support`."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import structlog

from factories import Clock
from mls_sync.config import Settings
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.migrate import upgrade
from mls_sync.store.open import open_database

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


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Give every test the logging configuration it started with.

    CLI commands and the Lambda handler configure structlog for the process, printing to the
    stderr they were given (CliRunner closes it afterwards): a later test must not log into it.
    """
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


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


# Every storage backend: a module that must pass on all three (the engine suite, the storage
# contract) says `pytestmark = pytest.mark.parametrize("database_url", ALL_BACKENDS,
# indirect=True)`. The default stays SQLite and PostgreSQL, not to run every test three times.
ALL_BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("dynamodb", marks=pytest.mark.dynamodb),
]
# MLS_SYNC_TEST_BACKENDS=dynamodb (or sqlite,postgres,dynamodb) runs any storage test elsewhere.
DEFAULT_BACKENDS = [
    backend
    for backend in ALL_BACKENDS
    if (backend if isinstance(backend, str) else backend.values[0])
    in os.environ.get("MLS_SYNC_TEST_BACKENDS", "sqlite,postgres").split(",")
]
_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    """moto's standalone server on loopback: a real HTTP endpoint of the DynamoDB protocol,
    with fake credentials in the environment (moto accepts any; none of ours is ever used)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access log line per call
    saved = {name: os.environ.get(name) for name in [*_FAKE_AWS, "AWS_PROFILE"]}
    os.environ.update(_FAKE_AWS)
    os.environ.pop("AWS_PROFILE", None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


async def _create_tables(url: str) -> None:
    db = open_database(url)
    try:
        await db.create_tables()  # type: ignore[union-attr]
    finally:
        await db.dispose()


@pytest.fixture
def dynamodb_url(dynamodb_endpoint: str) -> str:
    """Fresh, empty DynamoDB tables (a table prefix of their own) for one test."""
    url = f"dynamodb://t{uuid.uuid4().hex[:12]}?region=us-east-1&endpoint_url={dynamodb_endpoint}"
    asyncio.run(_create_tables(url))
    return url


@pytest.fixture(params=DEFAULT_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated, empty database for one test, on SQLite and on PostgreSQL (and on
    DynamoDB where a module asks for ALL_BACKENDS)."""
    if request.param == "dynamodb":
        yield request.getfixturevalue("dynamodb_url")
        return
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
def postgres_url(postgres_template: str) -> Iterator[str]:
    """A fresh, migrated, empty PostgreSQL database alone, for what exists only there
    (procrastinate workers, shared request budgets). Mark such tests `postgres`."""
    name = f"mls_sync_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    yield _postgres_url(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database: Any = open_database(database_url)
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
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client a test hands to platform clients it builds itself."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    """Real time plus whatever the test moves it on by; code under test is handed it."""
    return Clock()


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
