"""Many tenants, one service (issue 17), what an outsider meets before any MLS: refused secrets
are throttled per address, the metrics can ask for a token, signing out ends a sign-in on the
server, and the files holding data and keys are their owner's alone."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr

from api_support import api_client, bearer, new_user, service_settings
from mls_sync.api import create_app
from mls_sync.api.auth_throttle import AuthThrottle
from mls_sync.api.dashboard_session import SESSION_COOKIE
from mls_sync.config import Settings
from mls_sync.runtime import Runtime
from mls_sync.services import users
from mls_sync.store.crypto import cipher_from_settings
from mls_sync.store.database import Database
from mls_sync.store.migrate import upgrade


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def throttled_app(
    runtime: Runtime, clock: FakeClock, **changes: object
) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """The app with a throttle of 3 refusals a minute; `client(address)` calls it from there."""
    app = create_app(
        service_settings(runtime.settings, auth_failures_per_minute=3, **changes),
        runtime=runtime,
        clock=clock,
    )
    opened: list[httpx.AsyncClient] = []

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        opened.append(httpx.AsyncClient(transport=transport, base_url="http://api.test"))
        return opened[-1]

    try:
        yield client
    finally:
        for each in opened:
            await each.aclose()


async def test_refused_secrets_are_throttled_per_address_then_429_with_retry_after(
    runtime: Runtime,
) -> None:
    _, key = await new_user(runtime, "b@example.com")
    clock = FakeClock()
    async with throttled_app(runtime, clock, admin_api_key=SecretStr("admin-key")) as client:
        guesser, neighbour = client("203.0.113.7"), client("203.0.113.8")
        # one wrong API key, one wrong cron secret, one wrong admin key: all count
        assert (await guesser.get("/api/me", headers=bearer("guess"))).status_code == 401
        cron = await guesser.post("/api/cron/sync-mls-status", headers=bearer("guess"))
        assert cron.status_code == 401
        admin = await guesser.get("/api/admin/feeds", headers=bearer("guess"))
        assert admin.status_code == 401
        clock.now += 10
        # throttled now, the right key included (a different answer would confirm a guess)
        refused = await guesser.get("/api/me", headers=bearer(key))
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "50"
        page = await guesser.post("/sign-in", data={"api_key": key})
        assert (page.status_code, page.headers["retry-after"]) == (429, "50")
        assert "Too many failed sign-ins" in page.text
        # another address is not
        assert (await neighbour.get("/api/me", headers=bearer(key))).status_code == 200
        # once the first refusal is a minute old, the address may try again
        clock.now += 50
        assert (await guesser.get("/api/me", headers=bearer(key))).status_code == 200


async def test_sign_in_refusals_on_the_dashboard_count_too(runtime: Runtime) -> None:
    _, key = await new_user(runtime, "b@example.com")
    async with throttled_app(runtime, FakeClock()) as client:
        guesser = client("203.0.113.7")
        for _ in range(3):
            wrong = await guesser.post("/sign-in", data={"api_key": "guess"})
            assert wrong.status_code == 401
        assert (await guesser.get("/api/me", headers=bearer(key))).status_code == 429


def test_the_throttle_forgets_the_oldest_addresses_first_and_can_be_turned_off() -> None:
    clock = FakeClock()
    throttle = AuthThrottle(limit=1, clock=clock, max_addresses=2)
    for address in ("a", "b", "c"):
        throttle.refused(address)
    assert throttle.retry_after("a") is None  # pushed out by c: memory stays bounded
    assert throttle.retry_after("b") == throttle.retry_after("c") == 60.0
    off = AuthThrottle(limit=0, clock=clock)
    off.refused("a")
    assert off.retry_after("a") is None


async def test_metrics_ask_for_the_metrics_token_once_it_is_set(runtime: Runtime) -> None:
    async with api_client(runtime) as open_api:
        assert (await open_api.get("/metrics")).status_code == 200
    async with api_client(runtime, metrics_token=SecretStr("scrape-token")) as api:
        assert (await api.get("/metrics")).status_code == 401
        assert (await api.get("/metrics", headers=bearer("wrong"))).status_code == 401
        scraped = await api.get("/metrics", headers=bearer("scrape-token"))
    assert scraped.status_code == 200
    assert "mls_sync_" in scraped.text


async def test_signing_out_ends_the_sign_in_on_the_server_for_every_copy_of_the_cookie(
    runtime: Runtime,
) -> None:
    _, key = await new_user(runtime, "b@example.com")
    async with api_client(runtime) as web:
        signed_in = await web.post("/sign-in", data={"api_key": key})
        copied = signed_in.cookies[SESSION_COOKIE]
        page = (await web.get("/")).text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert (await web.post("/sign-out", data={"csrf": csrf})).status_code == 303
    async with api_client(runtime) as thief:
        thief.cookies.set(SESSION_COOKIE, copied)
        assert (await thief.get("/")).status_code == 303  # to /sign-in
        assert (await thief.get("/dashboard/live")).status_code == 401
    async with api_client(runtime) as web:  # signing in again works
        await web.post("/sign-in", data={"api_key": key})
        assert (await web.get("/")).status_code == 200


async def test_sqlite_files_and_the_development_key_are_readable_by_their_owner_only(
    tmp_path: Path,
) -> None:
    old_umask = os.umask(0o022)  # the usual one, which leaves new files world-readable
    try:
        db = Database(f"sqlite:///{tmp_path / 'data' / 'mls-sync.db'}")
        try:
            await upgrade(db)
            async with db.transaction() as session:
                await users.add_user(session, "a@example.com")
            files = sorted((tmp_path / "data").glob("mls-sync.db*"))
            modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in files}
        finally:
            await db.dispose()
        cipher_from_settings(Settings(data_dir=tmp_path / "keys"))
        key_file = next((tmp_path / "keys").iterdir())
        modes[key_file.name] = stat.S_IMODE(key_file.stat().st_mode)
    finally:
        os.umask(old_umask)
    assert "mls-sync.db-wal" in modes  # WAL is on: its files exist while the database is open
    assert modes == dict.fromkeys(modes, 0o600)


def test_every_guarded_operation_documents_its_refusals(runtime: Runtime) -> None:
    document = create_app(service_settings(runtime.settings), runtime=runtime).openapi()
    guarded = [
        (path, method, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    ]
    assert len(guarded) > 20
    for path, method, operation in guarded:
        assert {"401", "429"} <= set(operation["responses"]), f"{method} {path}"
