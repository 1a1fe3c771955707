"""One run per feed at a time: the in-process guard, runs over many feeds that claim before
they start and give every claim back, even when cancelled, and members of one shared feed that
ask at once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from factories import join, seed_connection, seed_shared_feed, seed_user
from mls_sync.api.errors import status_of
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.models import SyncRun
from mls_sync.sync import runs
from mls_sync.sync.guard import SYNC_IN_PROGRESS, LocalGuard, SyncInProgressError, hold
from polling import eventually


async def test_a_held_feed_cannot_be_taken_until_it_is_released() -> None:
    guard = LocalGuard()

    async with hold(guard, "f1") as first:
        async with hold(guard, "f1") as second:
            assert (first, second) == (True, False)
        assert guard.held() == {"f1"}  # the one that did not get it released nothing
    assert guard.held() == frozenset()
    assert await guard.try_acquire("f1")


async def test_a_cancelled_run_gives_back_every_feed_it_claimed(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id = await seed_user(runtime)
    seeded = [
        await seed_connection(runtime, reso, reso_url, {f"K{n}": S.ACTIVE}, user_id=user_id)
        for n in range(3)
    ]
    plan = {s.feed_id: [s.connection_id] for s in seeded}
    reso.latency = 1.0
    run = asyncio.ensure_future(runs.sync_feeds(runtime.engine, plan, trigger="test", at_once=1))
    await eventually(lambda: reso.request_count >= 1, within=5, what="the first MLS request")
    # Claimed up front (feeds, not connections: a private feed's id is not its connection's),
    # one of them running.
    assert runtime.engine.guard.held() == set(plan)
    assert not runtime.engine.guard.held() & {s.connection_id for s in seeded}

    run.cancel()
    await asyncio.gather(run, return_exceptions=True)

    assert runtime.engine.guard.held() == frozenset()


async def test_two_members_of_a_shared_feed_syncing_at_once_make_one_feed_run(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_token("vendor-token")
    for key in ("K1", "K2"):
        reso.add_listing(key, f"MLS-{key}", "Active")
    feed_id = await seed_shared_feed(runtime, reso_url)
    first = await join(runtime, feed_id, email="a@example.com", holding={"K1": S.ACTIVE})
    second = await join(runtime, feed_id, email="b@example.com", holding={"K2": S.ACTIVE})
    reso.latency = 1.0

    running = asyncio.ensure_future(runs.sync_connection(runtime.engine, first.connection_id))
    await eventually(lambda: reso.request_count >= 1, within=5, what="the first MLS request")
    assert runtime.engine.guard.held() == {feed_id}  # the feed, whichever member asked
    with pytest.raises(SyncInProgressError) as refused:
        await runs.sync_connection(runtime.engine, second.connection_id)
    assert (status_of(refused.value), refused.value.message) == (409, SYNC_IN_PROGRESS)
    outcome = await running

    assert outcome.success, outcome.message
    assert outcome.result.total_listings == 1  # the asking member's listings only
    # One load of the feed (one page holds both records); the refusal asked the MLS nothing.
    assert [r.params["$filter"] for r in reso.requests] == [
        "ModificationTimestamp ge 1970-01-01T00:00:00.000Z"
    ]
    assert runtime.engine.guard.held() == frozenset()
    async with runtime.db.transaction() as session:
        rows = (await session.execute(select(SyncRun))).scalars().all()
    # One feed run, and the row of the member that asked, pointing at it.
    assert sorted((r.scope, r.scope_id) for r in rows) == sorted(
        [("feed", feed_id), ("connection", first.connection_id)]
    )
    feed_run = next(r for r in rows if r.scope == "feed")
    member_run = next(r for r in rows if r.scope == "connection")
    assert (feed_run.success, feed_run.user_id, feed_run.totals["totalListings"]) == (
        True,
        None,
        2,
    )
    assert (member_run.feed_run_id, member_run.user_id) == (feed_run.id, first.user_id)
