"""The embedded scheduler: fires on its schedule and runs each feed whose cadence has come,
never overlaps itself (an overrunning run makes the next tick skip, and says so), and stops by
finishing or abandoning the running sync without losing state."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest
import structlog
from apscheduler.triggers.cron import CronTrigger
from pydantic import ValidationError
from sqlalchemy import select

from factories import seed_connection
from mls_sync.config import Settings, cron_trigger
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.scheduler import SyncScheduler
from mls_sync.store import repositories as repo
from mls_sync.store.models import MlsFeed, SyncRun
from polling import eventually

EVERY_SECOND = CronTrigger(second="*")


async def scheduled_runs(runtime: Runtime, scope: str = "feed") -> list[SyncRun]:
    """The run rows the schedule wrote, oldest first: by default each feed's run (one per
    tick and feed); scope "connection" gives the rows of members whose listings changed."""
    async with runtime.db.transaction() as session:
        stmt = (
            select(SyncRun)
            .where(SyncRun.trigger == "schedule", SyncRun.scope == scope)
            .order_by(SyncRun.started_at)
        )
        return list((await session.execute(stmt)).scalars().all())


async def due_at_every_tick(runtime: Runtime, feed_id: str) -> None:
    """A feed whose cadence has always come: every tick runs it (the API allows a minute at
    the fastest; a test's schedule ticks every second)."""
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
        assert feed is not None
        feed.cadence_seconds = 0


async def listing_status(runtime: Runtime, listing_id: str) -> str:
    async with runtime.db.transaction() as session:
        listing = await repo.get_listing(session, listing_id)
        assert listing is not None
        return listing.status


async def test_it_syncs_every_feed_on_its_schedule(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await due_at_every_tick(runtime, seeded.feed_id)
    reso.set_status("K1", "Pending")
    scheduler = SyncScheduler(runtime.engine, trigger=EVERY_SECOND)

    scheduler.start()
    try:
        await eventually(lambda: len(scheduler.runs) >= 2, within=5, what="two scheduled runs")
    finally:
        await scheduler.stop()

    assert all(run.success for run in scheduler.runs)
    assert await listing_status(runtime, seeded.listings["K1"].id) == "pending"
    assert len(await scheduled_runs(runtime)) >= 2


async def test_a_tick_leaves_a_feed_alone_until_its_cadence_has_come(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    scheduler = SyncScheduler(runtime.engine, trigger=EVERY_SECOND)

    scheduler.start()
    try:
        await eventually(lambda: len(scheduler.runs) >= 2, within=5, what="two scheduled runs")
        # The default cadence (15 minutes) has not come since the first tick's run.
        assert [run.message.split(":")[0] for run in scheduler.runs][:2] == [
            "Synced 1 of 1 MLS connections",
            "Synced 0 of 0 MLS connections",
        ]
        assert len(await scheduled_runs(runtime)) == 1
        reso.set_status("K1", "Pending")
        async with runtime.db.transaction() as session:  # ... until its cadence has passed
            feed = await session.get(MlsFeed, seeded.feed_id)
            assert feed is not None and feed.last_run_at is not None
            feed.last_run_at -= timedelta(seconds=feed.cadence_seconds)

        async def pending() -> bool:
            return await listing_status(runtime, seeded.listings["K1"].id) == "pending"

        await eventually(pending, within=5, what="the feed's next run")
    finally:
        await scheduler.stop()

    assert [run.scope_id for run in await scheduled_runs(runtime)] == [
        seeded.feed_id,
        seeded.feed_id,
    ]
    assert len(reso.requests) == 2  # the load, then one query for changes


async def test_an_overrunning_run_makes_the_next_tick_skip_and_log(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.latency = 1.5  # each run outlasts the one-second schedule
    scheduler = SyncScheduler(runtime.engine, trigger=EVERY_SECOND)

    with structlog.testing.capture_logs() as logs:
        scheduler.start()
        try:
            await eventually(lambda: len(scheduler.runs) >= 2, within=10, what="two runs")
        finally:
            await scheduler.stop()

    assert scheduler.skipped_ticks >= 1
    skipped = [e for e in logs if e["event"].startswith("scheduled sync skipped")]
    assert len(skipped) == scheduler.skipped_ticks
    assert skipped[0]["log_level"] == "warning"
    runs = list(scheduler.runs)
    for earlier, later in itertools.pairwise(runs):
        assert later.started_at >= earlier.finished_at  # never two at once
    recorded = await scheduled_runs(runtime)
    for earlier, later in itertools.pairwise(recorded):
        assert earlier.finished_at is not None
        assert later.started_at >= earlier.finished_at


async def test_stopping_lets_the_running_sync_finish_within_the_grace_period(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.set_status("K1", "Closed")
    reso.latency = 0.8
    scheduler = SyncScheduler(runtime.engine, trigger=EVERY_SECOND, grace_seconds=10)
    scheduler.start()
    await eventually(lambda: reso.request_count >= 1, within=5, what="a run in flight")

    await scheduler.stop()

    assert not scheduler.running
    assert len(scheduler.runs) == 1
    assert await listing_status(runtime, seeded.listings["K1"].id) == "sold"
    [run] = await scheduled_runs(runtime)
    [member_run] = await scheduled_runs(runtime, "connection")  # its listing changed
    assert run.finished_at is not None and member_run.finished_at is not None
    assert (run.scope_id, member_run.feed_run_id) == (seeded.feed_id, run.id)


async def test_stopping_abandons_a_sync_that_outlasts_the_grace_period_without_losing_state(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.set_status("K1", "Closed")
    reso.latency = 1.8  # under the MLS timeout (2 s in tests), far over the grace period
    scheduler = SyncScheduler(runtime.engine, trigger=EVERY_SECOND, grace_seconds=0.2)
    scheduler.start()
    await eventually(lambda: reso.request_count >= 1, within=5, what="a run in flight")

    started = time.monotonic()
    await scheduler.stop()

    assert time.monotonic() - started < 1.5
    assert list(scheduler.runs) == []  # abandoned, not finished
    assert await listing_status(runtime, seeded.listings["K1"].id) == "active"
    assert runtime.engine.guard.held() == frozenset()  # nothing is left claimed
    # The next run (another process start, say) picks the change up.
    reso.latency = 0.0
    scheduler = SyncScheduler(runtime.engine, trigger=EVERY_SECOND)
    scheduler.start()
    try:
        await eventually(lambda: len(scheduler.runs) >= 1, within=5, what="the next run")
    finally:
        await scheduler.stop()
    assert await listing_status(runtime, seeded.listings["K1"].id) == "sold"


def test_the_default_schedule_is_every_fifteen_minutes() -> None:
    trigger = cron_trigger(Settings().schedule_cron)
    assert (
        str(trigger)
        == "cron[month='*', day='*', day_of_week='*', hour='*', minute='*/15', second='0']"
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("every 15 minutes", "needs 5 fields"),
        ("*/15 * * *", "needs 5 fields"),
        ("61 * * * *", "is not valid"),
        ("0 2 * * 1-5", "day-of-week field with names"),
    ],
)
def test_a_bad_schedule_is_a_clear_settings_error(expression: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(schedule_cron=expression)


def test_a_leading_seconds_field_allows_short_schedules() -> None:
    assert Settings(schedule_cron="*/5 * * * * *").schedule_cron == "*/5 * * * * *"
