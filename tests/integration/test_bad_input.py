"""Bad input, each with a clear error and nothing changed: MLS bodies of the wrong shape, type
or size, request bodies too large for the API, and settings that stop the service at start with
one line. (Covered elsewhere: MLS bodies that are not JSON, lack `value` or a key, and unknown
statuses in test_mls_client.py / test_engine.py; platform bodies that are not JSON in
test_social_clients.py; wrong request types, other users' ids and missing or wrong keys and cron
secrets in test_api_management.py / test_api_sync.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from api_support import api_client, bearer, new_user
from factories import publish, seed_connection
from mls_sync.cli import app
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.reso_vendors import Fault
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.models import (
    FeedRecord,
    Listing,
    ListingStatusHistory,
    MlsConnection,
    MlsFeed,
    UnpublishJob,
)


async def nothing_changed(runtime: Runtime) -> None:
    async with runtime.db.transaction() as session:
        statuses = set((await session.execute(select(Listing.status))).scalars())
        assert statuses == {S.ACTIVE}
        for model in (ListingStatusHistory, UnpublishJob):
            assert await session.scalar(select(func.count()).select_from(model)) == 0


def record(key: Any = "K1", status: Any = "Closed", **more: Any) -> dict[str, Any]:
    return {"ListingKey": key, "ListingId": "MLS-K1", "StandardStatus": status, **more}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([record()], "Malformed MLS response: no 'value' array"),
        (None, "Malformed MLS response: no 'value' array"),
        ({"value": record()}, "Malformed MLS response: 'value' is not an array"),
        ({"value": ["K1"]}, "Malformed MLS response: a record is not an object"),
        ({"value": [record(key=1)]}, "Malformed MLS response: a record has no ListingKey"),
    ],
    ids=["list-body", "null-body", "value-object", "record-string", "key-number"],
)
async def test_an_mls_page_of_the_wrong_shape_stops_the_feed_run_and_changes_nothing(
    body: Any,
    error: str,
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
) -> None:
    """A page that cannot be read is the feed's failure, not a listing's: the run stops
    before writing anything (no replica row, no bookmark, still not loaded), and the next run
    asks again from where it stood."""
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await publish(runtime, platforms, seeded.listings["K1"], "facebook")
    reso.fail_next.append(Fault(status=200, body=body))

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert (outcome.success, outcome.message) == (False, f"MLS replication stopped: {error}")
    assert outcome.result.errors == []
    await nothing_changed(runtime)
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, seeded.feed_id)
        assert feed is not None
        assert (feed.loaded_at, feed.bookmark_timestamp, feed.bookmark_keys) == (None, None, [])
        assert await session.scalar(select(func.count()).select_from(FeedRecord)) == 0
    assert (await runtime.engine.sync_connection(seeded.connection_id)).success  # asked again


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (5, "MLS StandardStatus is not text: 5"),
        (None, "MLS record has no StandardStatus"),
        ("Sold-ish", "Sold-ish"),
    ],
    ids=["status-number", "status-missing", "status-unknown"],
)
async def test_an_mls_record_with_a_status_we_cannot_read_is_its_listings_error(
    status: Any,
    error: str,
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await publish(runtime, platforms, seeded.listings["K1"], "facebook")
    reso.fail_next.append(Fault(status=200, body={"value": [record(status=status)]}))

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.success is True  # the feed was read; one listing could not be judged
    [reported] = outcome.result.errors
    assert reported.mls_number == "MLS-K1" and error in reported.error
    await nothing_changed(runtime)


async def test_a_lookup_answered_twice_differently_trusts_neither_and_changes_nothing(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    """A direct lookup (one listing's sync) asks for one key: two different answers for it
    leave the listing as it was. (Replication reads a stream ordered by timestamp, where a
    record met again is simply its newer version.)"""
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    assert (await runtime.engine.sync_connection(seeded.connection_id)).success  # the load
    await publish(runtime, platforms, seeded.listings["K1"], "facebook")
    reso.fail_next.append(Fault(status=200, body={"value": [record(), record(status="Active")]}))

    outcome = await runtime.engine.sync_listing(seeded.listings["K1"].id)

    error = "Malformed MLS response: ListingKey 'K1' comes twice, differently"
    assert (outcome.success, outcome.message) == (False, f"MLS unreachable: {error}")
    [reported] = outcome.result.errors
    assert (reported.mls_number, reported.error) == ("MLS-K1", error)
    await nothing_changed(runtime)


async def test_a_huge_page_is_read_and_only_our_listings_count(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    strangers = [record(key=f"X{n:05d}", status="Closed") for n in range(20_000)]
    reso.fail_next.append(Fault(status=200, body={"value": strangers}))

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert [e.error for e in outcome.result.errors] == ["Listing not found in MLS"]
    assert outcome.result.updated_listings == 0
    await nothing_changed(runtime)


# -- the API ------------------------------------------------------------------------------------


async def test_a_huge_request_body_is_refused_with_413_before_it_is_read(
    runtime: Runtime,
) -> None:
    _, key = await new_user(runtime)
    padding = "x" * 2_000_000
    payload = {"name": padding, "baseUrl": "https://mls.example", "token": "t"}

    async with api_client(runtime) as api:
        announced = await api.post("/api/mls-connections", json=payload, headers=bearer(key))

        async def chunks() -> Any:  # no Content-Length: counted as it arrives
            for _ in range(40):
                yield b"x" * 65_536

        streamed = await api.post("/api/mls-connections", content=chunks(), headers=bearer(key))
        small = await api.get("/api/mls-connections", headers=bearer(key))

    for refused in (announced, streamed):
        assert refused.status_code == 413
        assert refused.json() == {"detail": "Request body too large: at most 1048576 bytes"}
    assert small.status_code == 200 and small.json() == []
    async with runtime.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(MlsConnection)) == 0


# -- broken settings ----------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", TokenCipher.generate_key())
    for name in ("DATABASE_URL", "MLS_SYNC_ENVIRONMENT", "MLS_SYNC_SCHEDULE_CRON"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.mark.parametrize(
    ("env", "code", "line"),
    [
        ({"DATABASE_URL": "mysql://root@db/app"}, 2, "DATABASE_URL must look like"),
        (
            {"MLS_SYNC_ENVIRONMENT": "production", "MLS_SYNC_TOKEN_KEYS": ""},
            2,
            "MLS_SYNC_TOKEN_KEYS must be set in production",
        ),
        ({"MLS_SYNC_SCHEDULE_CRON": "61 * * * *"}, 2, "schedule_cron '61 * * * *' is not valid"),
        ({"MLS_SYNC_SCHEDULE_CRON": "0 9 * * 1-5"}, 2, "day-of-week field with names"),
        ({"MLS_SYNC_TOKEN_KEYS": "not-a-fernet-key"}, 2, "not a valid Fernet key"),
        ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}, 1, "Cannot reach the database"),
    ],
    ids=["database-url", "production-no-key", "cron-range", "cron-day-number", "bad-key", "no-db"],
)
def test_broken_settings_refuse_to_start_with_one_clear_line(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], code: int, line: str
) -> None:
    for name, value in env.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)

    result = cli.invoke(app, ["serve", "--port", "1"])

    assert result.exit_code == code, (result.stderr, result.exception)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and line in lines[0], result.stderr
    assert "Traceback" not in result.stderr
