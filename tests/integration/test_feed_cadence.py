"""Each feed runs on its own cadence: the scheduler's ticks run only the feeds whose cadence
has come (a tenth early at most, so a schedule ticking at the cadence never skips a beat);
the cron endpoint and `sync all` run every active feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from factories import seed_connection
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.services import queued_runs
from mls_sync.store import deferred_runs
from mls_sync.store.models import MlsFeed
from mls_sync.sync import runs

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _feed(cadence: int, last_run: datetime | None) -> MlsFeed:
    return MlsFeed(cadence_seconds=cadence, last_run_at=last_run)


def test_a_feed_is_due_once_its_cadence_has_passed_since_its_last_run_began() -> None:
    assert runs.is_due(_feed(60, None), NOW)  # never run
    assert not runs.is_due(_feed(60, NOW - timedelta(seconds=30)), NOW)
    assert runs.is_due(_feed(60, NOW - timedelta(seconds=54)), NOW)  # a tenth early
    assert not runs.is_due(_feed(900, NOW - timedelta(minutes=10)), NOW)
    assert runs.is_due(_feed(900, NOW - timedelta(minutes=14)), NOW)


async def _set_cadence(runtime: Runtime, feed_id: str, seconds: int) -> None:
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
        assert feed is not None
        feed.cadence_seconds = seconds


async def test_the_schedule_runs_only_due_feeds_and_the_cron_runs_every_feed(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    fast = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.add_token("other-token")
    slow = await seed_connection(
        runtime, reso, reso_url, {"K2": S.ACTIVE}, user_id=fast.user_id, token="other-token"
    )
    await _set_cadence(runtime, fast.feed_id, 60)
    first, both = await runs.sync_everyone(runtime.engine, trigger="schedule", due_only=True)
    assert first.success and len(both.connections) == 2

    # A minute later the one-minute feed is due again, the fifteen-minute one is not.
    async with runtime.db.transaction() as session:
        for feed_id in (fast.feed_id, slow.feed_id):
            feed = await session.get(MlsFeed, feed_id)
            assert feed is not None and feed.last_run_at is not None
            feed.last_run_at -= timedelta(seconds=61)
    before = reso.request_count
    _, aggregated = await runs.sync_everyone(runtime.engine, trigger="schedule", due_only=True)
    assert [c.connection_id for c in aggregated.connections] == [fast.connection_id]
    assert reso.request_count - before == 1  # the due feed's one replication request

    _, everyone = await runs.sync_everyone(runtime.engine, trigger="cron")
    assert {c.connection_id for c in everyone.connections} == {
        fast.connection_id,
        slow.connection_id,
    }


async def test_a_scheduled_feed_job_that_finds_its_feed_ran_since_it_was_queued_asks_nothing(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    # A tick decides from a snapshot: a feed whose run was just starting looks due, and a
    # second job is queued behind the first. Under the lease, that job sees the run and stops.
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await runs.sync_feed(runtime.engine, seeded.feed_id, trigger="schedule", only_if_due=True)
    before = reso.request_count
    with pytest.raises(runs.NotDueError):
        await runs.sync_feed(runtime.engine, seeded.feed_id, trigger="schedule", only_if_due=True)
    assert reso.request_count == before
    # The operator's own run (and the cron's) is never held back by the cadence.
    await runs.sync_feed(runtime.engine, seeded.feed_id, trigger="manual")
    assert reso.request_count > before


async def test_the_skipped_job_finishes_its_child_row_as_skipped_so_the_tick_completes(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    await runs.sync_feed(runtime.engine, seeded.feed_id, trigger="schedule")
    async with runtime.db.transaction() as session:
        parent = await deferred_runs.queue_run(
            session, trigger="schedule", scope="all", scope_id=None, user_id=None, connections=0
        )
        (child,) = await deferred_runs.start_fan_out(
            session, parent, [seeded.feed_id], scope="feed"
        )
    await queued_runs.run_feed(
        runtime.engine,
        feed_id=seeded.feed_id,
        run_id=child.id,
        parent_id=parent.id,
        trigger="schedule",
        last_attempt=False,
        only_if_due=True,
    )
    async with runtime.db.transaction() as session:
        finished_child = await deferred_runs.get_run(session, child.id)
        finished_parent = await deferred_runs.get_run(session, parent.id)
    assert finished_child is not None and finished_child.totals == {"skipped": True}
    assert finished_child.message == runs.RAN_SINCE_SCHEDULED
    assert finished_parent is not None and finished_parent.state == deferred_runs.FINISHED
