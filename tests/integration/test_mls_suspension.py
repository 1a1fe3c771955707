"""A vendor's punishment is respected: MLS Grid answers a token over its limits with 429 and
suspends it, and sending more keeps the usage high. The first such answer rests the
credential for the profile's cool-down (an hour) or the vendor's Retry-After, whichever is
later: no retry, no request from any run or lookup before it ends, every feed on the same
credential rests too, the feed shows until when, a critical alert fires once, and the first
cycle after it resumes from the bookmark."""

from __future__ import annotations

from datetime import timedelta

import pytest

from factories import join, seed_shared_feed
from mls_sync.domain.errors import NotFound
from mls_sync.domain.status import ListingStatus as S
from mls_sync.observability.alerts import CREDENTIAL_SUSPENDED
from mls_sync.observability.metrics import METRICS
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.services.dashboard import dashboard_data
from mls_sync.services.feeds import get_feed, view
from mls_sync.store.models import MlsFeed
from mls_sync.store.types import utcnow
from mls_sync.sync import runs

TOKEN = "mls-token"


@pytest.fixture
def grid(reso: ResoSandbox) -> ResoSandbox:
    """MLS Grid mode, with a tighter limit than MLS Grid's (as if another client used the
    same token): our second request within a second goes over and suspends the token."""
    reso.vendor = "mlsgrid"
    reso.rate_limit = 1
    reso.max_page_size = 1  # a first load of several pages, so several requests
    for n in range(4):
        reso.add_listing(f"K{n}", f"MLS-{n}", "Active")
    return reso


async def _grid_feed(runtime: Runtime, reso_url: str, system: str = "sandbox") -> MlsFeed:
    """An operator's MLS Grid feed for one MLS (`system`), with a member holding K1."""
    feed_id = await seed_shared_feed(
        runtime,
        reso_url,
        token=TOKEN,
        provider="mlsgrid",
        profile_overrides={"originating_system_name": system},
        key_field=None,
    )
    await join(runtime, feed_id, email=f"agent-{system}@example.com", holding={"K1": S.ACTIVE})
    return await _stored(runtime, feed_id)


def _alerts_fired() -> float:
    return METRICS.alerts_fired.labels(CREDENTIAL_SUSPENDED)._value.get()


async def _stored(runtime: Runtime, feed_id: str) -> MlsFeed:
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
    assert feed is not None
    return feed


async def test_a_suspended_credential_is_never_touched_during_its_cool_down(
    runtime: Runtime, grid: ResoSandbox, reso_url: str
) -> None:
    feed = await _grid_feed(runtime, reso_url)
    alerts = _alerts_fired()

    first = await runs.sync_feed(runtime.engine, feed.id, trigger="manual")
    assert not first.success
    assert "suspended this credential" in first.message
    assert grid.suspended(TOKEN)
    asked = grid.request_count
    # The first 429 ended it: no retry after it (the last request was the refused one).
    assert grid.requests[-1].token == TOKEN
    stored = await _stored(runtime, feed.id)
    assert stored.suspended_until is not None
    assert stored.suspended_until > utcnow() + timedelta(minutes=59)  # MLS Grid: an hour
    async with runtime.db.transaction() as session:
        shown = await view(session, await get_feed(session, feed.id))
    assert shown.suspended_until == stored.suspended_until
    async with runtime.db.transaction() as session:  # what the member's dashboard shows
        (member,) = await session.connections.of_feed(feed.id)
        page = await dashboard_data(session, member.user_id)
    assert [c.suspended_until for c in page.connections] == [stored.suspended_until]
    assert _alerts_fired() == alerts + 1

    # During the cool-down, nothing reaches the MLS: not the operator, not the cron, not the
    # schedule (the feed is not due), not a user's lookup of one listing.
    again = await runs.sync_feed(runtime.engine, feed.id, trigger="manual")
    assert not again.success and "suspended this credential" in again.message
    everyone, _ = await runs.sync_everyone(runtime.engine, trigger="cron")
    assert not everyone.success
    _, scheduled = await runs.sync_everyone(runtime.engine, trigger="schedule", due_only=True)
    assert scheduled.connections == []
    async with runtime.db.transaction() as session:
        (listing,) = await session.listings.of_feed(feed.id)
    looked_up = await runtime.engine.sync_listing(listing.id, trigger="manual")
    assert not looked_up.success and "suspended this credential" in looked_up.message
    assert grid.request_count == asked
    assert _alerts_fired() == alerts + 1  # announced once

    # The cool-down passes (the vendor lifts it; our clock passes the stored end): the next
    # cycle resumes the interrupted first load from its bookmark.
    grid.lift_suspensions()
    grid.rate_limit = None
    async with runtime.db.transaction() as session:
        row = await session.get(MlsFeed, feed.id)
        assert row is not None
        row.suspended_until = utcnow() - timedelta(seconds=1)
    _, resumed = await runs.sync_everyone(runtime.engine, trigger="schedule", due_only=True)
    assert len(resumed.connections) == 1 and resumed.connections[0].success
    assert grid.request_count > asked
    after = await _stored(runtime, feed.id)
    assert after.loaded_at is not None
    async with runtime.db.transaction() as session:
        assert await session.replica.count(feed.id) == 4
        assert (await view(session, await get_feed(session, feed.id))).suspended_until is None


async def test_every_feed_on_the_suspended_credential_rests_and_others_do_not(
    runtime: Runtime, grid: ResoSandbox, reso_url: str
) -> None:
    # MLS Grid issues one token per vendor, covering each MLS it serves: one feed per MLS.
    for n in range(4):
        grid.add_listing(f"N{n}", f"NS-{n}", "Active", originating_system_name="northstar")
    northstar = await _grid_feed(runtime, reso_url, "northstar")
    actris = await _grid_feed(runtime, reso_url, "actris")
    grid.add_token("another-vendor")
    elsewhere = await _stored(
        runtime,
        await seed_shared_feed(
            runtime,
            reso_url,
            token="another-vendor",
            provider="mlsgrid",
            profile_overrides={"originating_system_name": "sandbox"},
            key_field=None,
        ),
    )

    await runs.sync_feed(runtime.engine, northstar.id, trigger="manual")
    assert grid.suspended(TOKEN)
    asked = grid.request_count

    rested = await runs.sync_feed(runtime.engine, actris.id, trigger="manual")
    assert not rested.success and "suspended this credential" in rested.message
    assert grid.request_count == asked
    assert (await _stored(runtime, actris.id)).suspended_until is not None
    # Another credential on the same host is its own: it is not suspended.
    assert (await _stored(runtime, elsewhere.id)).suspended_until is None


async def test_a_vendor_that_only_throttles_is_waited_out_and_retried(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    """A generic server's 429 (Retry-After: 1) is a throttle, not a punishment: the request
    is retried after the pause and the feed is never marked suspended."""
    reso.add_listing("K1", "MLS-1", "Active")
    feed_id = await seed_shared_feed(runtime, reso_url, token=TOKEN)
    reso.fail_next = [429]
    ran = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")
    assert ran.success
    assert (await _stored(runtime, feed_id)).suspended_until is None


async def test_a_removed_feed_is_not_found_rather_than_suspended(runtime: Runtime) -> None:
    with pytest.raises(NotFound):
        await runs.sync_feed(runtime.engine, "no-such-feed", trigger="manual")
