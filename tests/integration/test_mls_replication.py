"""Incremental replication: the normal path of a connection sync, against the sandbox MLS over
HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from factories import seed_connection, seed_user
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.models import Listing, MlsConnection
from mls_sync.sync import runs

LONG_AGO = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
ONE_INSTANT = LONG_AGO + timedelta(hours=1)  # older than the clock-skew margin


async def connection_row(runtime: Runtime, connection_id: str) -> MlsConnection:
    async with runtime.db.transaction() as session:
        connection = await session.get(MlsConnection, connection_id)
        assert connection is not None
        return connection


async def replicating_from(runtime: Runtime, connection_id: str, bookmark: datetime) -> None:
    """The connection as after a full check: replication starts at `bookmark`."""
    async with runtime.db.transaction() as session:
        connection = await session.get(MlsConnection, connection_id)
        assert connection is not None
        connection.bookmark_timestamp = bookmark
        connection.bookmark_keys = []
        connection.last_full_check_at = datetime.now(UTC)


async def statuses(runtime: Runtime, connection_id: str) -> dict[str, str]:
    async with runtime.db.transaction() as session:
        return {
            listing.listing_key: listing.status
            for listing in await session.listings.of_connection(connection_id)
        }


async def history_rows(runtime: Runtime, listing: Listing) -> int:
    async with runtime.db.transaction() as session:
        return len(await session.listings.history(listing.id))


def property_requests(reso: ResoSandbox, since: int = 0) -> list[dict[str, str]]:
    return [r.params for r in reso.requests[since:]]


async def test_first_sync_is_a_full_check_and_then_changes_are_replicated(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})

    await runtime.engine.sync_connection(seeded.connection_id)
    assert "ListingKey in" in reso.requests[0].params["$filter"]
    after_full = await connection_row(runtime, seeded.connection_id)
    assert after_full.last_full_check_at is not None
    assert after_full.bookmark_timestamp is not None

    reso.set_status("K2", "Closed")
    before = reso.request_count
    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    [params] = property_requests(reso, before)
    assert params["$filter"].startswith("ModificationTimestamp ge ")
    assert params["$orderby"] == "ModificationTimestamp asc"
    assert [(c.mls_number, c.new_status) for c in outcome.result.status_changes] == [
        ("MLS-K2", S.SOLD)
    ]


async def test_an_idle_incremental_sync_costs_one_request_per_connection(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id = await seed_user(runtime)
    reso.add_token("other-token")
    first = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE}, user_id=user_id)
    second = await seed_connection(
        runtime, reso, reso_url, {"B1": S.SOLD}, user_id=user_id, token="other-token"
    )
    await runs.sync_user(runtime.engine, user_id)  # the first run of each is its full check
    before = reso.request_count

    outcome, aggregated = await runs.sync_user(runtime.engine, user_id)

    assert outcome.success
    assert {c.connection_id for c in aggregated.connections} == {
        first.connection_id,
        second.connection_id,
    }
    assert reso.request_count - before == 2
    assert sorted(r.token or "" for r in reso.requests[before:]) == ["mls-token", "other-token"]


async def test_120_records_sharing_one_timestamp_over_pages_of_50_apply_exactly_once(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    keys = [f"K{n:03d}" for n in range(120)]
    seeded = await seed_connection(runtime, reso, reso_url, dict.fromkeys(keys, S.ACTIVE))
    await replicating_from(runtime, seeded.connection_id, LONG_AGO)
    reso.max_page_size = 50
    for key in keys:  # one bulk update in the MLS: every record gets the same timestamp
        reso.add_listing(key, f"MLS-{key}", "Pending", modification_timestamp=ONE_INSTANT)

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.success
    assert outcome.result.updated_listings == 120
    assert set((await statuses(runtime, seeded.connection_id)).values()) == {S.PENDING}
    stored = await connection_row(runtime, seeded.connection_id)
    assert stored.bookmark_timestamp == ONE_INSTANT
    assert sorted(stored.bookmark_keys) == keys

    again = await runtime.engine.sync_connection(seeded.connection_id)

    assert again.result.updated_listings == 0
    for listing in seeded.listings.values():
        assert await history_rows(runtime, listing) == 1


async def test_a_crash_between_fetching_and_committing_does_not_advance_the_bookmark(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"K{n:03d}" for n in range(120)]
    seeded = await seed_connection(runtime, reso, reso_url, dict.fromkeys(keys, S.ACTIVE))
    await replicating_from(runtime, seeded.connection_id, LONG_AGO)
    reso.max_page_size = 50
    for key in keys:
        reso.add_listing(key, f"MLS-{key}", "Closed", modification_timestamp=ONE_INSTANT)
    real_save = repo.save_bookmark
    pages_committed = 0

    async def crash_on_second_page(*args: object, **kwargs: object) -> None:
        nonlocal pages_committed
        if pages_committed == 1:
            raise RuntimeError("worker killed")
        pages_committed += 1
        await real_save(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repo, "save_bookmark", crash_on_second_page)
    with pytest.raises(RuntimeError, match="worker killed"):
        await runtime.engine.sync_connection(seeded.connection_id)

    # Page one (50 records) is committed with its bookmark; page two rolled back with its own.
    stored = await connection_row(runtime, seeded.connection_id)
    assert stored.bookmark_timestamp == ONE_INSTANT
    assert sorted(stored.bookmark_keys) == keys[:50]
    now = await statuses(runtime, seeded.connection_id)
    assert [k for k in keys if now[k] == S.SOLD] == keys[:50]

    monkeypatch.setattr(repo, "save_bookmark", real_save)
    resumed = await runtime.engine.sync_connection(seeded.connection_id)

    assert resumed.result.updated_listings == 70  # the rest, and none of the first 50 again
    assert set((await statuses(runtime, seeded.connection_id)).values()) == {S.SOLD}
    for listing in seeded.listings.values():
        assert await history_rows(runtime, listing) == 1


async def test_a_failed_page_leaves_the_bookmark_where_it_was(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await replicating_from(runtime, seeded.connection_id, LONG_AGO)
    reso.add_listing("K1", "MLS-K1", "Closed", modification_timestamp=ONE_INSTANT)
    reso.fail_next.extend([500, 500, 500])

    failed = await runtime.engine.sync_connection(seeded.connection_id)

    assert not failed.success
    assert failed.message.startswith("MLS replication stopped: MLS error: HTTP 500")
    assert (await connection_row(runtime, seeded.connection_id)).bookmark_timestamp == LONG_AGO
    retried = await runtime.engine.sync_connection(seeded.connection_id)
    assert retried.result.updated_listings == 1


async def test_the_bookmark_stays_a_clock_skew_margin_behind_the_run(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await replicating_from(runtime, seeded.connection_id, LONG_AGO)
    reso.set_status("K1", "Pending")  # modified just now

    await runtime.engine.sync_connection(seeded.connection_id)

    stored = await connection_row(runtime, seeded.connection_id)
    margin = timedelta(seconds=runtime.settings.mls_clock_skew_seconds)
    assert stored.bookmark_timestamp is not None
    assert stored.bookmark_timestamp <= datetime.now(UTC) - margin
    assert stored.bookmark_keys == []  # K1 will be read again, and applying it is idempotent


async def test_deleted_records_are_not_found_and_other_listings_are_ignored(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})
    await replicating_from(runtime, seeded.connection_id, LONG_AGO)
    reso.set_status("K1", "Delete")
    reso.add_listing("NOT-OURS", "MLS-X", "Closed")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert [(e.mls_number, e.error) for e in outcome.result.errors] == [
        ("MLS-K1", "Listing not found in MLS")
    ]
    assert outcome.result.updated_listings == 0
    assert (await statuses(runtime, seeded.connection_id))["K1"] == S.ACTIVE


async def test_a_full_check_runs_when_due_and_when_asked(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})
    await runtime.engine.sync_connection(seeded.connection_id)
    reso.remove_listing("K2")  # replication cannot see a record that left the feed

    quiet = await runtime.engine.sync_connection(seeded.connection_id)
    asked = await runtime.engine.sync_connection(seeded.connection_id, full=True)

    assert quiet.result.errors == []
    assert [e.error for e in asked.result.errors] == ["Listing not found in MLS"]
    async with runtime.db.transaction() as session:
        connection = await session.get(MlsConnection, seeded.connection_id)
        assert connection is not None
        connection.last_full_check_at = datetime.now(UTC) - timedelta(hours=25)
    before = reso.request_count
    due = await runtime.engine.sync_connection(seeded.connection_id)
    assert "ListingKey in" in reso.requests[before].params["$filter"]
    assert [e.error for e in due.result.errors] == ["Listing not found in MLS"]
