"""The sync engine against the sandbox MLS and platforms over real HTTP, on SQLite,
PostgreSQL and DynamoDB (moto's local server): every storage backend must pass every test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from conftest import ALL_BACKENDS
from factories import seed_connection, seed_posts
from mls_sync.domain.status import ConnectionState, PostStatus
from mls_sync.domain.status import ListingStatus as S
from mls_sync.mls.errors import MLS_CONNECTION_EXPIRED, NETWORK_TIMEOUT
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.reso_vendors import Fault
from mls_sync.store.models import Listing, MlsConnection, MlsFeed

pytestmark = pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)

# What every record request asks for: the keys, the statuses and who lists it.
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


async def listing_status(runtime: Runtime, listing_id: str) -> str:
    async with runtime.db.transaction() as session:
        listing = await session.get(Listing, listing_id)
        assert listing is not None
        return listing.status


async def post_statuses(runtime: Runtime, listing_id: str) -> dict[str, str]:
    async with runtime.db.transaction() as session:
        return {p.platform: p.status for p in await session.posts.of_listing(listing_id)}


@pytest.mark.parametrize(
    ("ours", "mls_now", "expected"),
    [
        (S.ACTIVE, "Closed", S.SOLD),
        (S.ACTIVE, "ActiveUnderContract", S.PENDING),
        (S.PENDING, "Active", S.ACTIVE),
        (S.PENDING, "Closed", S.SOLD),
        (S.SOLD, "Active", S.ACTIVE),
        (S.ACTIVE, "Withdrawn", S.OFF_MARKET),
        (S.COMING_SOON, "Active", S.ACTIVE),
        (S.ACTIVE, "Active Under Contract", S.PENDING),
    ],
)
async def test_each_transition_is_applied_with_its_history_row(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, ours: S, mls_now: str, expected: S
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": ours, "K2": S.ACTIVE})
    reso.set_status("K1", mls_now)

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    listing = seeded.listings["K1"]
    assert outcome.success
    assert outcome.result.total_listings == 2
    assert outcome.result.updated_listings == 1
    [change] = outcome.result.status_changes
    assert (change.listing_id, change.old_status, change.new_status) == (listing.id, ours, expected)
    assert await listing_status(runtime, listing.id) == expected
    async with runtime.db.transaction() as session:
        history = await session.listings.history(listing.id)
    assert [(h.old_status, h.new_status) for h in history] == [(ours, expected)]
    assert outcome.result.restored_listings == (
        1 if (ours, expected) == (S.PENDING, S.ACTIVE) else 0
    )


async def test_a_second_run_with_nothing_new_changes_nothing(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.set_status("K1", "Pending")
    await runtime.engine.sync_connection(seeded.connection_id)

    again = await runtime.engine.sync_connection(seeded.connection_id)

    assert again.result.updated_listings == 0
    assert again.result.status_changes == []
    async with runtime.db.transaction() as session:
        history = await session.listings.history(seeded.listings["K1"].id)
    assert len(history) == 1


async def test_sold_listing_posts_are_deleted_on_the_platforms_and_marked_unpublished(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    listing = seeded.listings["K1"]
    await seed_posts(runtime, platforms, listing, ("facebook", "linkedin", "x"))
    reso.set_status("K1", "Closed")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.result.unpublished_posts == 3
    assert await post_statuses(runtime, listing.id) == {
        "facebook": PostStatus.UNPUBLISHED,
        "linkedin": PostStatus.UNPUBLISHED,
        "x": PostStatus.UNPUBLISHED,
    }
    assert sorted(platform for platform, _ in platforms.deletes) == ["facebook", "linkedin", "x"]
    async with runtime.db.transaction() as session:
        assert await session.outbox.depth() == (0, None)


async def test_missing_platform_connection_warns_and_leaves_the_post_published(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    listing = seeded.listings["K1"]
    await seed_posts(runtime, platforms, listing, ("facebook",))
    await seed_posts(runtime, platforms, listing, ("x",), connect=False)
    reso.set_status("K1", "Closed")

    with capture_logs() as logs:
        outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.success
    assert outcome.result.unpublished_posts == 1
    assert await post_statuses(runtime, listing.id) == {
        "facebook": PostStatus.UNPUBLISHED,
        "x": PostStatus.PUBLISHED,
    }
    assert platforms.has_post("x", "x-K1")
    assert {
        "event": "No x connection found for unpublishing post",
        "log_level": "warning",
        "platform": "x",
        "listing_id": listing.id,
        "mls_number": "MLS-K1",
    }.items() <= next(e for e in logs if e["log_level"] == "warning").items()


async def test_posts_are_not_touched_when_a_listing_goes_pending(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await seed_posts(runtime, platforms, seeded.listings["K1"], ("facebook",))
    reso.set_status("K1", "Pending")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.result.unpublished_posts == 0
    assert platforms.deletes == []


async def test_listing_the_mls_no_longer_has_is_an_error_and_stays_unchanged(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})
    reso.remove_listing("K1")
    reso.set_status("K2", "Closed")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.success
    [error] = outcome.result.errors
    assert (error.listing_id, error.mls_number, error.error) == (
        seeded.listings["K1"].id,
        "MLS-K1",
        "Listing not found in MLS",
    )
    assert await listing_status(runtime, seeded.listings["K1"].id) == S.ACTIVE
    assert await listing_status(runtime, seeded.listings["K2"].id) == S.SOLD


async def test_unknown_mls_status_is_an_error_for_that_listing_only(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})
    reso.set_status("K1", "Sold-ish")
    reso.set_status("K2", "Pending")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert [e.error for e in outcome.result.errors] == ["Unknown MLS status: 'Sold-ish'"]
    assert await listing_status(runtime, seeded.listings["K1"].id) == S.ACTIVE
    assert await listing_status(runtime, seeded.listings["K2"].id) == S.PENDING


async def test_rejected_token_expires_the_connection_with_the_reauthenticate_message(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.set_status("K1", "Closed")
    reso.revoke_token("mls-token")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert not outcome.success
    assert outcome.message == "MLS connection expired. Please re-authenticate."
    assert await listing_status(runtime, seeded.listings["K1"].id) == S.ACTIVE
    async with runtime.db.transaction() as session:
        connection = await session.get(MlsConnection, seeded.connection_id)
        feed = await session.get(MlsFeed, seeded.feed_id)
        assert connection is not None and feed is not None
        assert connection.state == ConnectionState.EXPIRED
        assert connection.state_message == MLS_CONNECTION_EXPIRED
        assert (feed.state, feed.state_message) == (ConnectionState.EXPIRED, MLS_CONNECTION_EXPIRED)


async def test_expired_connection_is_not_retried_against_the_mls(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.revoke_token("mls-token")
    await runtime.engine.sync_connection(seeded.connection_id)
    requests_before = reso.request_count

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.message == MLS_CONNECTION_EXPIRED
    assert reso.request_count == requests_before


async def test_a_timeout_stops_the_load_after_its_committed_page_and_the_next_run_finishes(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    # 120 records, 50 a page: a load of three pages; the MLS stops answering in time once the
    # first page is committed.
    statuses = {f"K{n:03d}": S.ACTIVE for n in range(120)}
    seeded = await seed_connection(runtime, reso, reso_url, statuses)
    for key in statuses:
        reso.set_status(key, "Pending")
    reso.max_page_size = 50
    pages_done = 0

    def slow_after_the_first_page(_records: int, _total: int) -> None:
        nonlocal pages_done
        pages_done += 1
        if pages_done == 1:
            reso.fail_next.append(Fault(delay=5.0))  # the client gives up after 2 s

    outcome = await runtime.engine.sync_connection(
        seeded.connection_id, progress=slow_after_the_first_page
    )

    assert not outcome.success
    assert outcome.message == f"MLS replication stopped: {NETWORK_TIMEOUT}"
    assert outcome.result.errors == []  # the feed stopped; no listing is at fault
    assert outcome.result.updated_listings == 50
    assert reso.request_count == 2  # a timeout is not retried within the run
    first_page = {f"K{n:03d}" for n in range(50)}
    for key, listing in seeded.listings.items():
        expected = S.PENDING if key in first_page else S.ACTIVE
        assert await listing_status(runtime, listing.id) == expected

    resumed = await runtime.engine.sync_connection(seeded.connection_id)

    assert resumed.success
    assert resumed.result.updated_listings == 70  # none of the first 50 again
    for listing in seeded.listings.values():
        assert await listing_status(runtime, listing.id) == S.PENDING


async def test_the_first_load_asks_for_every_record_oldest_first_with_the_select(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(
        runtime, reso, reso_url, {f"K{n:03d}": S.ACTIVE for n in range(120)}
    )

    await runtime.engine.sync_connection(seeded.connection_id)

    [request] = reso.requests  # the server's page (200) holds the whole feed
    assert request.token == "mls-token"
    assert request.params == {
        "$filter": "ModificationTimestamp ge 1970-01-01T00:00:00.000Z",
        "$orderby": "ModificationTimestamp asc",
        "$select": SELECT,
    }


async def test_records_the_replica_lacks_are_fetched_fifty_a_request_with_filter_and_select(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await runtime.engine.sync_connection(seeded.connection_id)  # the load
    # Records replication cannot see: stamped before the bookmark (a vendor's backfill).
    backdated = datetime.now(UTC) - timedelta(days=1)
    missed = [f"N{n:03d}" for n in range(120)]
    for key in missed:
        reso.add_listing(key, f"MLS-{key}", "Active", modification_timestamp=backdated)
    before = reso.request_count

    outcome = await runtime.engine.sync_connection(seeded.connection_id, full=True)

    assert outcome.success
    replication, pull, *lookups = reso.requests[before:]
    assert replication.params["$filter"].startswith("ModificationTimestamp ge ")
    assert pull.params == {"$select": "ListingKey,ListingId,ModificationTimestamp"}
    assert len(lookups) == 3  # 50, 50 and 20 keys
    assert lookups[0].token == "mls-token"
    assert lookups[0].params == {
        "$filter": "ListingKey in (" + ",".join(f"'{key}'" for key in missed[:50]) + ")",
        "$select": SELECT,
        "$top": "50",
    }
    assert lookups[2].params["$filter"].count("'N") == 20
    async with runtime.db.transaction() as session:
        assert await session.replica.count(seeded.feed_id) == 121


async def test_server_paging_is_followed_through_next_links(
    runtime: Runtime, reso_url: str, reso: ResoSandbox
) -> None:
    reso.max_page_size = 7  # a server that answers 7 records a page
    statuses = {f"K{n:02d}": S.ACTIVE for n in range(30)}
    seeded = await seed_connection(runtime, reso, reso_url, statuses)
    for key in statuses:
        reso.set_status(key, "Closed")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.result.updated_listings == 30
    assert outcome.result.errors == []
    assert reso.request_count == 5  # ceil(30 / 7) pages of the feed's load


async def test_a_feed_keyed_by_listing_id_looks_listings_up_by_listing_id(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE}, key_field="ListingId")
    reso.set_status("K1", "Closed")

    outcome = await runtime.engine.sync_listing(seeded.listings["K1"].id)

    assert outcome.result.updated_listings == 1
    [request] = reso.requests
    assert request.params["$filter"] == "ListingId in ('MLS-K1')"


async def test_a_server_error_stops_the_run_and_the_next_run_retries_it(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.set_status("K1", "Closed")
    # Each request is tried mls_retry_attempts (3) times before the run counts it as failed.
    reso.fail_next.extend([503, 503, 503])

    failed = await runtime.engine.sync_connection(seeded.connection_id)

    assert not failed.success
    assert failed.message.startswith("MLS replication stopped: MLS error: HTTP 503")
    assert failed.result.errors == []  # the feed could not be read; no listing is at fault
    assert await listing_status(runtime, seeded.listings["K1"].id) == S.ACTIVE

    retried = await runtime.engine.sync_connection(seeded.connection_id)

    assert retried.success
    assert retried.result.updated_listings == 1


async def test_single_listing_sync_asks_only_for_that_listing(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})
    reso.set_status("K1", "Closed")
    reso.set_status("K2", "Closed")

    outcome = await runtime.engine.sync_listing(seeded.listings["K1"].id)

    assert outcome.result.total_listings == 1
    assert [c.mls_number for c in outcome.result.status_changes] == ["MLS-K1"]
    assert reso.requests[-1].params["$filter"] == "ListingKey in ('K1')"
    assert await listing_status(runtime, seeded.listings["K2"].id) == S.ACTIVE


async def test_a_run_is_recorded_for_the_feed_and_for_the_connection_that_asked(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE})
    reso.set_status("K1", "Pending")
    reso.remove_listing("K2")

    await runtime.engine.sync_connection(seeded.connection_id, trigger="cron")

    async with runtime.db.transaction() as session:
        rows = await session.runs.newest(user_id=None)
    assert sorted(run.scope for run in rows) == ["connection", "feed"]
    feed_run = next(run for run in rows if run.scope == "feed")
    run = next(run for run in rows if run.scope == "connection")
    assert (feed_run.trigger, feed_run.scope_id, feed_run.user_id, feed_run.success) == (
        "cron",
        seeded.feed_id,
        None,
        True,
    )
    assert (run.trigger, run.scope_id, run.user_id, run.success, run.feed_run_id) == (
        "cron",
        seeded.connection_id,
        seeded.user_id,
        True,
        feed_run.id,
    )
    not_found = [
        {
            "listingId": seeded.listings["K2"].id,
            "mlsNumber": "MLS-K2",
            "error": "Listing not found in MLS",
        }
    ]
    for row in (feed_run, run):  # the feed's totals are its only member's
        assert row.finished_at is not None
        assert row.totals["totalListings"] == 2
        assert row.totals["updatedListings"] == 1
        assert row.errors == not_found


async def test_tokens_are_stored_encrypted(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await seed_posts(runtime, platforms, seeded.listings["K1"], ("facebook",))

    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, seeded.feed_id)
        platform = await session.platforms.get(seeded.user_id, "facebook")
    assert feed is not None and platform is not None
    assert "mls-token" not in feed.credentials_encrypted
    assert "facebook-token" not in platform.access_token_encrypted
    assert runtime.cipher.decrypt(feed.credentials_encrypted) == "mls-token"


async def test_a_post_already_gone_on_the_platform_counts_as_unpublished(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    listing = seeded.listings["K1"]
    # The agent deleted it by hand: the platform no longer has it.
    await seed_posts(runtime, platforms, listing, ("facebook",), exists_on_platform=False)
    reso.set_status("K1", "Closed")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.result.unpublished_posts == 1
    assert outcome.result.errors == []
    assert await post_statuses(runtime, listing.id) == {"facebook": PostStatus.UNPUBLISHED}
