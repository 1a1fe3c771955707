"""Feed replication: each MLS feed is replicated once, whoever holds its listings, against the
sandbox MLS over HTTP, on SQLite and PostgreSQL. A feed's first run loads it; later runs ask
only for what changed since the bookmark, and apply each page to every member holding its
keys; a reconciliation (daily, or when asked) finds what replication cannot see."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from factories import join, seed_connection, seed_shared_feed, seed_user
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox, format_timestamp
from mls_sync.store import repositories as repo
from mls_sync.store.models import Listing, MlsFeed, SyncRun
from mls_sync.sync import runs

LONG_AGO = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
ONE_INSTANT = LONG_AGO + timedelta(hours=1)  # older than the clock-skew margin
SELECT = ",".join(
    (
        "ListingKey",
        "ListingId",
        "StandardStatus",
        "MlsStatus",
        "ModificationTimestamp",
        "ListAgentMlsId",
        "ListOfficeMlsId",
    )
)
KEY_ONLY = {"$select": "ListingKey,ListingId,ModificationTimestamp"}
NOT_FOUND = "Listing not found in MLS"


async def feed_row(runtime: Runtime, feed_id: str) -> MlsFeed:
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
        assert feed is not None
        return feed


async def replicating_from(runtime: Runtime, feed_id: str, bookmark: datetime) -> None:
    """The feed as after its first load (and reconciliation): replication starts at
    `bookmark`."""
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
        assert feed is not None
        feed.bookmark_timestamp = bookmark
        feed.bookmark_keys = []
        feed.loaded_at = feed.reconciled_at = datetime.now(UTC)


async def statuses(runtime: Runtime, connection_id: str) -> dict[str, str]:
    async with runtime.db.transaction() as session:
        return {
            listing.listing_key: listing.status
            for listing in await session.listings.of_connection(connection_id)
        }


async def history_rows(runtime: Runtime, listing: Listing) -> int:
    async with runtime.db.transaction() as session:
        return len(await session.listings.history(listing.id))


async def replica_size(runtime: Runtime, feed_id: str) -> int:
    async with runtime.db.transaction() as session:
        return await session.replica.count(feed_id)


async def run_rows(runtime: Runtime) -> list[SyncRun]:
    async with runtime.db.transaction() as session:
        return await session.runs.newest(user_id=None, limit=1000)


def property_requests(reso: ResoSandbox, since: int = 0) -> list[dict[str, str]]:
    return [r.params for r in reso.requests[since:]]


def since(moment: datetime) -> str:
    return "ModificationTimestamp ge " + format_timestamp(moment)


def backdated(keys: list[str]) -> dict[str, datetime]:
    """A distinct timestamp per key, in key order, older than the clock-skew margin."""
    return {key: ONE_INSTANT + timedelta(seconds=n) for n, key in enumerate(keys)}


def after_first_page(action: Callable[[], None]) -> Callable[[int, int], None]:
    """A progress callback that does `action` once, when the run's first page is committed."""
    pages = 0

    def progress(_records: int, _total: int) -> None:
        nonlocal pages
        pages += 1
        if pages == 1:
            action()

    return progress


def crash_on_second_save(
    real_save: Callable[..., Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    """`repo.save_bookmark` that kills the worker inside the second page's transaction."""
    saves = 0

    async def save(*args: object, **kwargs: object) -> None:
        nonlocal saves
        saves += 1
        if saves == 2:
            raise RuntimeError("worker killed")
        await real_save(*args, **kwargs)

    return save


async def test_the_first_sync_loads_the_feed_and_then_changes_are_replicated(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})

    await runtime.engine.sync_connection(seeded.connection_id)

    [load] = property_requests(reso)
    assert load == {
        "$filter": "ModificationTimestamp ge 1970-01-01T00:00:00.000Z",
        "$orderby": "ModificationTimestamp asc",
        "$select": SELECT,
    }
    loaded = await feed_row(runtime, seeded.feed_id)
    assert loaded.loaded_at is not None
    assert loaded.reconciled_at == loaded.loaded_at  # a load counts as a reconciliation
    assert loaded.bookmark_timestamp is not None
    assert await replica_size(runtime, seeded.feed_id) == 2

    reso.set_status("K2", "Closed")
    before = reso.request_count
    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    [params] = property_requests(reso, before)
    assert params["$filter"] == since(loaded.bookmark_timestamp)
    assert params["$orderby"] == "ModificationTimestamp asc"
    assert [(c.mls_number, c.new_status) for c in outcome.result.status_changes] == [
        ("MLS-K2", S.SOLD)
    ]


async def test_an_idle_sync_costs_one_request_per_private_feed(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id = await seed_user(runtime)
    reso.add_token("other-token")
    first = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE}, user_id=user_id)
    second = await seed_connection(
        runtime, reso, reso_url, {"B1": S.SOLD}, user_id=user_id, token="other-token"
    )
    await runs.sync_user(runtime.engine, user_id)  # the first run of each feed is its load
    before = reso.request_count

    outcome, aggregated = await runs.sync_user(runtime.engine, user_id)

    assert outcome.success
    assert {c.connection_id for c in aggregated.connections} == {
        first.connection_id,
        second.connection_id,
    }
    assert reso.request_count - before == 2
    assert sorted(r.token or "" for r in reso.requests[before:]) == ["mls-token", "other-token"]


async def test_an_idle_shared_feed_costs_one_request_and_one_run_row_for_fifty_members(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_token("vendor-token")
    feed_id = await seed_shared_feed(runtime, reso_url)
    members = []
    for n in range(50):
        key = f"K{n:02d}"
        reso.add_listing(key, f"MLS-{key}", "Active")
        members.append(
            await join(runtime, feed_id, email=f"agent{n}@example.com", holding={key: S.ACTIVE})
        )
    await runs.sync_everyone(runtime.engine)  # the feed's load
    before = reso.request_count
    rows_before = {run.id for run in await run_rows(runtime)}

    outcome, aggregated = await runs.sync_everyone(runtime.engine, trigger="cron")

    assert outcome.success
    assert [c.connection_id for c in aggregated.connections] == [m.connection_id for m in members]
    assert all(c.success for c in aggregated.connections)
    [request] = reso.requests[before:]
    assert request.token == "vendor-token"
    assert request.params["$filter"].startswith("ModificationTimestamp ge ")
    [row] = [run for run in await run_rows(runtime) if run.id not in rows_before]
    assert (row.scope, row.scope_id, row.trigger, row.success) == ("feed", feed_id, "cron", True)


async def test_one_status_change_reaches_every_member_holding_the_listing_in_one_request(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_token("vendor-token")
    feed_id = await seed_shared_feed(runtime, reso_url)
    reso.add_listing("K1", "MLS-K1", "Active")
    reso.add_listing("K2", "MLS-K2", "Active")
    alice = await join(runtime, feed_id, email="alice@example.com", holding={"K1": S.ACTIVE})
    bob = await join(
        runtime, feed_id, email="bob@example.com", holding={"K1": S.ACTIVE, "K2": S.ACTIVE}
    )
    await runtime.engine.sync_feed(feed_id)  # the load
    reso.set_status("K1", "Closed")
    before = reso.request_count

    ran = await runtime.engine.sync_feed(feed_id, trigger="cron")

    [request] = reso.requests[before:]
    assert request.token == "vendor-token"
    assert request.params["$filter"].startswith("ModificationTimestamp ge ")
    for member in (alice, bob):
        changes = ran.outcome_for(member.connection_id).result.status_changes
        assert [(c.listing_id, c.old_status, c.new_status) for c in changes] == [
            (member.listings["K1"].id, S.ACTIVE, S.SOLD)
        ]
    assert ran.whole().result.updated_listings == 2
    assert await statuses(runtime, alice.connection_id) == {"K1": S.SOLD}
    assert await statuses(runtime, bob.connection_id) == {"K1": S.SOLD, "K2": S.ACTIVE}
    # The feed's row, and one row for each member that had a change, pointing at it.
    rows = await run_rows(runtime)
    [feed_run] = [run for run in rows if run.id == ran.run_id]
    assert (feed_run.scope, feed_run.scope_id, feed_run.totals["updatedListings"]) == (
        "feed",
        feed_id,
        2,
    )
    members = sorted(
        (run.scope, run.scope_id, run.user_id, run.totals["updatedListings"])
        for run in rows
        if run.feed_run_id == ran.run_id
    )
    assert members == sorted(
        [
            ("connection", alice.connection_id, alice.user_id, 1),
            ("connection", bob.connection_id, bob.user_id, 1),
        ]
    )


async def test_120_records_sharing_one_timestamp_over_pages_of_50_apply_exactly_once(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    keys = [f"K{n:03d}" for n in range(120)]
    seeded = await seed_connection(runtime, reso, reso_url, dict.fromkeys(keys, S.ACTIVE))
    await replicating_from(runtime, seeded.feed_id, LONG_AGO)
    reso.max_page_size = 50
    for key in keys:  # one bulk update in the MLS: every record gets the same timestamp
        reso.add_listing(key, f"MLS-{key}", "Pending", modification_timestamp=ONE_INSTANT)

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.success
    assert outcome.result.updated_listings == 120
    assert set((await statuses(runtime, seeded.connection_id)).values()) == {S.PENDING}
    stored = await feed_row(runtime, seeded.feed_id)
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
    await replicating_from(runtime, seeded.feed_id, LONG_AGO)
    reso.max_page_size = 50
    for key in keys:
        reso.add_listing(key, f"MLS-{key}", "Closed", modification_timestamp=ONE_INSTANT)
    real_save = repo.save_bookmark

    monkeypatch.setattr(repo, "save_bookmark", crash_on_second_save(real_save))
    with pytest.raises(RuntimeError, match="worker killed"):
        await runtime.engine.sync_connection(seeded.connection_id)

    # Page one (50 records) is committed with its bookmark; page two rolled back with its own.
    stored = await feed_row(runtime, seeded.feed_id)
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


async def test_the_bookmark_never_moves_past_an_uncommitted_page(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"K{n:03d}" for n in range(120)]
    seeded = await seed_connection(runtime, reso, reso_url, dict.fromkeys(keys, S.ACTIVE))
    await replicating_from(runtime, seeded.feed_id, LONG_AGO)
    reso.max_page_size = 50
    stamps = backdated(keys)
    for key in keys:
        reso.add_listing(key, f"MLS-{key}", "Closed", modification_timestamp=stamps[key])
    real_save = repo.save_bookmark

    monkeypatch.setattr(repo, "save_bookmark", crash_on_second_save(real_save))
    with pytest.raises(RuntimeError, match="worker killed"):
        await runtime.engine.sync_connection(seeded.connection_id)

    # The bookmark covers page one (K000-K049) and nothing of the page that never committed.
    stored = await feed_row(runtime, seeded.feed_id)
    assert (stored.bookmark_timestamp, stored.bookmark_keys) == (stamps["K049"], ["K049"])
    assert await replica_size(runtime, seeded.feed_id) == 50
    monkeypatch.setattr(repo, "save_bookmark", real_save)
    before = reso.request_count

    resumed = await runtime.engine.sync_connection(seeded.connection_id)

    # Only from the last committed page on: K049 (dropped as seen) to K119, two pages of 50.
    pages = property_requests(reso, before)
    assert len(pages) == 2
    assert pages[0]["$filter"] == since(stamps["K049"])
    assert resumed.result.updated_listings == 70
    assert await replica_size(runtime, seeded.feed_id) == 120
    for listing in seeded.listings.values():
        assert await history_rows(runtime, listing) == 1


async def test_an_interrupted_first_load_resumes_from_its_bookmark(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    keys = [f"K{n:03d}" for n in range(120)]
    seeded = await seed_connection(
        runtime, reso, reso_url, dict.fromkeys(keys, S.ACTIVE), in_mls=False
    )
    stamps = backdated(keys)
    for key in keys:
        reso.add_listing(key, f"MLS-{key}", "Closed", modification_timestamp=stamps[key])
    reso.max_page_size = 50

    # The MLS fails the second page (every attempt at it) once the first is committed.
    interrupted = await runtime.engine.sync_connection(
        seeded.connection_id,
        progress=after_first_page(lambda: reso.fail_next.extend([500, 500, 500])),
    )

    assert not interrupted.success
    assert interrupted.message.startswith("MLS replication stopped: MLS error: HTTP 500")
    assert interrupted.result.updated_listings == 50
    assert reso.request_count == 4  # page one, then page two three times
    stored = await feed_row(runtime, seeded.feed_id)
    assert stored.loaded_at is None  # still loading: imports wait
    assert (stored.bookmark_timestamp, stored.bookmark_keys) == (stamps["K049"], ["K049"])
    assert await replica_size(runtime, seeded.feed_id) == 50
    [feed_run] = [run for run in await run_rows(runtime) if run.scope == "feed"]
    assert feed_run.progress == {"recordsLoaded": 50}
    before = reso.request_count

    resumed = await runtime.engine.sync_connection(seeded.connection_id)

    pages = property_requests(reso, before)
    assert len(pages) == 2  # K049-K119 (71 records), 50 a page; not the whole feed again
    assert pages[0]["$filter"] == since(stamps["K049"])
    assert resumed.success
    assert resumed.result.updated_listings == 70
    assert resumed.result.errors == []
    assert (await feed_row(runtime, seeded.feed_id)).loaded_at is not None
    assert await replica_size(runtime, seeded.feed_id) == 120
    for listing in seeded.listings.values():
        assert await history_rows(runtime, listing) == 1


async def test_a_failed_page_leaves_the_bookmark_where_it_was(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await replicating_from(runtime, seeded.feed_id, LONG_AGO)
    reso.add_listing("K1", "MLS-K1", "Closed", modification_timestamp=ONE_INSTANT)
    reso.fail_next.extend([500, 500, 500])

    failed = await runtime.engine.sync_connection(seeded.connection_id)

    assert not failed.success
    assert failed.message.startswith("MLS replication stopped: MLS error: HTTP 500")
    assert (await feed_row(runtime, seeded.feed_id)).bookmark_timestamp == LONG_AGO
    retried = await runtime.engine.sync_connection(seeded.connection_id)
    assert retried.result.updated_listings == 1


async def test_the_bookmark_stays_a_clock_skew_margin_behind_the_run(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await replicating_from(runtime, seeded.feed_id, LONG_AGO)
    reso.set_status("K1", "Pending")  # modified just now

    await runtime.engine.sync_connection(seeded.connection_id)

    stored = await feed_row(runtime, seeded.feed_id)
    margin = timedelta(seconds=runtime.settings.mls_clock_skew_seconds)
    assert stored.bookmark_timestamp is not None
    assert stored.bookmark_timestamp <= datetime.now(UTC) - margin
    assert stored.bookmark_keys == []  # K1 will be read again, and applying it is idempotent


async def test_deleted_records_are_not_found_and_records_nobody_holds_only_fill_the_replica(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})
    await replicating_from(runtime, seeded.feed_id, LONG_AGO)
    reso.set_status("K1", "Delete")
    reso.add_listing("NOT-OURS", "MLS-X", "Closed")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert [(e.mls_number, e.error) for e in outcome.result.errors] == [("MLS-K1", NOT_FOUND)]
    assert outcome.result.updated_listings == 0
    assert (await statuses(runtime, seeded.connection_id))["K1"] == S.ACTIVE
    async with runtime.db.transaction() as session:
        rows = await session.replica.of_keys(seeded.feed_id, ["NOT-OURS"])
    assert rows["NOT-OURS"].standard_status == "Closed"  # for a later import


async def test_a_reconciliation_finds_a_record_that_left_the_feed_when_asked_and_when_due(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_token("vendor-token")
    feed_id = await seed_shared_feed(runtime, reso_url)
    reso.add_listing("K1", "MLS-K1", "Active")
    reso.add_listing("K2", "MLS-K2", "Active")
    holder = await join(
        runtime, feed_id, email="alice@example.com", holding={"K1": S.ACTIVE, "K2": S.ACTIVE}
    )
    other = await join(runtime, feed_id, email="bob@example.com", holding={"K1": S.ACTIVE})
    await runtime.engine.sync_feed(feed_id)  # the load
    reso.remove_listing("K2")  # replication cannot see a record that left the feed

    quiet = await runtime.engine.sync_feed(feed_id)
    before = reso.request_count
    asked = await runtime.engine.sync_feed(feed_id, full=True)

    assert quiet.outcome_for(holder.connection_id).result.errors == []
    replication, pull = reso.requests[before:]  # nothing to refetch: K1 is up to date
    assert replication.params["$filter"].startswith("ModificationTimestamp ge ")
    assert pull.params == KEY_ONLY
    errors = asked.outcome_for(holder.connection_id).result.errors
    assert [(e.listing_id, e.mls_number, e.error) for e in errors] == [
        (holder.listings["K2"].id, "MLS-K2", NOT_FOUND)
    ]
    assert asked.outcome_for(other.connection_id).result.errors == []
    async with runtime.db.transaction() as session:
        assert (await session.replica.of_keys(feed_id, ["K2"]))["K2"].gone
        feed = await session.get(MlsFeed, feed_id)
        assert feed is not None
        feed.reconciled_at = datetime.now(UTC) - timedelta(hours=25)
    before = reso.request_count

    due = await runtime.engine.sync_connection(holder.connection_id)

    _, pull = reso.requests[before:]
    assert pull.params == KEY_ONLY
    assert [(e.mls_number, e.error) for e in due.result.errors] == [("MLS-K2", NOT_FOUND)]
    assert (await statuses(runtime, holder.connection_id))["K2"] == S.ACTIVE
    reconciled = (await feed_row(runtime, feed_id)).reconciled_at
    assert reconciled is not None and reconciled > datetime.now(UTC) - timedelta(hours=1)
