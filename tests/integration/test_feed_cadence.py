"""Each feed runs on its own cadence: the scheduler's ticks run only the feeds whose cadence
has come (a tenth early at most, so a schedule ticking at the cadence never skips a beat);
the cron endpoint and `sync all` run every active feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from factories import seed_connection
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
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
