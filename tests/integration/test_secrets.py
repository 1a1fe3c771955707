"""Secrets: tokens are encrypted at rest (the SQLite file and a PostgreSQL dump hold no
plaintext, shared feeds' credentials included), `mls-sync keys rotate` re-encrypts everything
with the newest key while old keys still decrypt until removed, and no secret reaches a log
line, an error message or an API response; the cron secret and the admin key are compared in
constant time."""

from __future__ import annotations

import asyncio
import hmac
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from structlog.testing import capture_logs
from typer.testing import CliRunner

from api_support import CRON_SECRET, api_client, bearer, new_user
from factories import connect_platform, publish, seed_connection
from factories import with_sandbox_platforms as sandbox_platforms
from mls_sync.api import deps
from mls_sync.cli import app
from mls_sync.config import Settings
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.models import MlsFeed, PlatformConnection
from mls_sync.store.types import utcnow

MLS_TOKEN = "mls-plaintext-token-5f1c"
VENDOR_TOKEN = "shared-feed-vendor-token-2d8b"  # the operator's, for a shared feed
CLIENT_SECRET = "oauth-client-secret-9a7e"
ACCESS = "platform-access-token-3b2d"
T = TypeVar("T")
REFRESH = "platform-refresh-token-7c4a"
ADMIN_KEY = "operator-admin-key-6e0f"


@pytest.fixture
def settings(settings: Settings, platforms_url: str) -> Settings:
    return sandbox_platforms(settings, platforms_url)


async def store_secrets(db: Database, cipher: TokenCipher) -> None:
    async with db.transaction() as session:
        user = await repo.create_user(session, "agent@example.com")
        shared = await repo.create_feed(
            session,
            cipher,
            owner_user_id=None,
            base_url="https://api.mlsgrid.example/v2",
            secret=VENDOR_TOKEN,
            provider="mlsgrid",
        )
        await repo.join_feed(session, user_id=user.id, feed=shared)
        await repo.create_mls_connection(
            session, cipher, user_id=user.id, base_url="https://mls.example/odata", token=MLS_TOKEN
        )
        await repo.create_mls_connection(
            session,
            cipher,
            user_id=user.id,
            provider="trestle",
            auth_kind="oauth2",
            base_url="https://api-trestle.example/odata",
            credentials={"client_id": "client-1", "client_secret": CLIENT_SECRET},
        )
        await repo.upsert_platform_connection(
            session,
            cipher,
            user_id=user.id,
            platform="x",
            access_token=ACCESS,
            refresh_token=REFRESH,
        )


def database_bytes(database_url: str) -> bytes:
    """Everything the database holds on disk: the SQLite file with its WAL, or a pg_dump."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed")
    return subprocess.run([pg_dump, database_url], capture_output=True, check=True).stdout


async def test_the_database_on_disk_holds_no_plaintext_secret(
    db: Database, database_url: str, runtime: Runtime
) -> None:
    await store_secrets(db, runtime.cipher)

    dumped = database_bytes(database_url)

    assert b"https://api-trestle.example/odata" in dumped  # the dump really holds the rows
    for secret in (MLS_TOKEN, VENDOR_TOKEN, CLIENT_SECRET, ACCESS, REFRESH):
        assert secret.encode() not in dumped


# -- key rotation ------------------------------------------------------------------------------


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(tmp_path))
    return CliRunner()


async def stored_ciphertexts(db: Database) -> list[str]:
    async with db.transaction() as session:
        mls = (await session.execute(select(MlsFeed.credentials_encrypted))).scalars()
        platform = (await session.execute(select(PlatformConnection))).scalars().all()
        values = list(mls)
        for row in platform:
            values += [row.access_token_encrypted, row.refresh_token_encrypted or ""]
        return [v for v in values if v]


def on_database(database_url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on its own Database in its own loop (CLI commands run their own loops)."""

    async def go() -> T:
        db = Database(database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(go())


def test_keys_rotate_re_encrypts_everything_with_the_newest_key(
    database_url: str, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = TokenCipher.generate_key(), TokenCipher.generate_key()
    on_database(database_url, lambda db: store_secrets(db, TokenCipher([old])))
    before = on_database(database_url, stored_ciphertexts)
    both = TokenCipher([new, old])
    # Until rotation, the old key (second in the list) still decrypts everything.
    assert {both.decrypt(v) for v in before} >= {MLS_TOKEN, VENDOR_TOKEN, ACCESS, REFRESH}

    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", f"{new},{old}")
    result = cli.invoke(app, ["keys", "rotate"])

    assert result.exit_code == 0, result.stderr
    # Three feeds (a shared one and two private ones) and one platform connection.
    assert "Re-encrypted 5 secrets in 4 rows" in result.stderr
    after = on_database(database_url, stored_ciphertexts)
    assert len(after) == len(before) and set(after).isdisjoint(before)
    only_new, only_old = TokenCipher([new]), TokenCipher([old])
    assert sorted(only_new.decrypt(v) for v in after) == sorted(both.decrypt(v) for v in before)
    for value in after:
        with pytest.raises(SecretDecryptError):
            only_old.decrypt(value)  # the old key can now be removed


def test_rotating_without_the_old_key_changes_nothing_and_says_why(
    database_url: str, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = TokenCipher.generate_key()
    on_database(database_url, lambda db: store_secrets(db, TokenCipher([key])))
    before = on_database(database_url, stored_ciphertexts)

    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", TokenCipher.generate_key())
    result = cli.invoke(app, ["keys", "rotate"])

    assert result.exit_code == 1
    assert "Nothing rotated" in result.stderr and "cannot be decrypted" in result.stderr
    assert on_database(database_url, stored_ciphertexts) == before


# -- no secret in logs, messages or responses -------------------------------------------------


async def test_no_secret_reaches_logs_error_messages_or_api_responses(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user_id, api_key = await new_user(runtime)
    working = await seed_connection(
        runtime, reso, reso_url, {"K1": S.ACTIVE}, user_id=user_id, token=MLS_TOKEN
    )
    reso.add_token(MLS_TOKEN)
    refused = await seed_connection(
        runtime, reso, reso_url, {"K2": S.ACTIVE}, user_id=user_id, token="revoked-mls-token-e1"
    )
    reso.revoke_token("revoked-mls-token-e1")
    # X: an expired access token, refreshed with a single-use refresh token that rotates.
    x_access, x_refresh = await connect_platform(
        runtime, platforms, user_id, "x", expires_at=utcnow() - timedelta(minutes=1)
    )
    # LinkedIn: a token the platform refuses, with no way to refresh it.
    li_access, _ = await connect_platform(runtime, platforms, user_id, "linkedin", refresh=False)
    platforms.expire_token("linkedin", li_access)
    for platform, post_id in (("x", "1850000000000000777"), ("linkedin", "urn:li:share:777")):
        await publish(runtime, platforms, working.listings["K1"], platform, post_id=post_id)
    reso.set_status("K1", "Closed")

    bodies: list[str] = []
    with capture_logs() as logs:
        async with api_client(runtime, admin_api_key=SecretStr(ADMIN_KEY)) as api:
            for method, path, secret in (
                ("POST", "/api/sync", api_key),
                ("POST", "/api/cron/sync-mls-status", CRON_SECRET),
                ("GET", "/api/admin/feeds", ADMIN_KEY),  # every feed, never its credentials
                ("GET", f"/api/admin/feeds/{refused.feed_id}", ADMIN_KEY),
                ("GET", "/api/mls-connections", api_key),
                ("GET", f"/api/mls-connections/{refused.connection_id}", api_key),
                ("GET", "/api/platform-connections", api_key),
                ("GET", "/api/posts", api_key),
                ("GET", "/api/me", api_key),
            ):
                response = await api.request(method, path, headers=bearer(secret))
                assert response.status_code == 200, (path, response.text)
                bodies.append(response.text)

    assert platforms.grants, "the X token was refreshed: new secrets were in play"
    secrets = {MLS_TOKEN, "revoked-mls-token-e1", x_access, li_access, api_key, CRON_SECRET}
    secrets |= {ADMIN_KEY}
    secrets |= {x_refresh or ""} | {g.access_token for g in platforms.grants}
    secrets |= {g.refresh_token or "" for g in platforms.grants}
    secrets.discard("")
    captured = capsys.readouterr()
    everything = "\n".join([*bodies, *map(repr, logs), captured.out, captured.err])
    assert "MLS connection expired. Please re-authenticate." in everything  # errors were said
    assert "LinkedIn connection expired" in everything
    assert [s for s in secrets if s in everything] == []


async def test_the_cron_secret_is_compared_in_constant_time(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return constant_time(given, expected)

    monkeypatch.setattr(deps.hmac, "compare_digest", spy)
    async with api_client(runtime) as api:
        wrong = await api.post("/api/cron/sync-mls-status", headers=bearer("nearly-" + "x" * 9))
        right = await api.post("/api/cron/sync-mls-status", headers=bearer(CRON_SECRET))

    assert (wrong.status_code, right.status_code) == (401, 200)
    expected = CRON_SECRET.encode()
    assert compared == [(b"nearly-xxxxxxxxx", expected), (expected, expected)]


async def test_the_admin_key_is_compared_in_constant_time(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return constant_time(given, expected)

    monkeypatch.setattr(deps.hmac, "compare_digest", spy)
    async with api_client(runtime, admin_api_key=SecretStr(ADMIN_KEY)) as api:
        wrong = await api.get("/api/admin/feeds", headers=bearer("nearly-" + "x" * 9))
        right = await api.get("/api/admin/feeds", headers=bearer(ADMIN_KEY))

    assert (wrong.status_code, right.status_code) == (401, 200)
    expected = ADMIN_KEY.encode()
    assert compared == [(b"nearly-xxxxxxxxx", expected), (expected, expected)]
