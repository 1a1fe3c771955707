"""A cron cycle's bookkeeping is shared by the feeds whose turns come together: their runs open
in one transaction, the quiet ones close in another, their leases go back in a third. An idle
cycle over many private feeds costs far fewer transactions than feeds, and records each feed's
run exactly as a run on its own does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from factories import seed_connection, seed_user
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.models import MlsFeed, SyncRun
from mls_sync.sync import runs
from worker_support import runs_where

FEEDS = 12
AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)


async def _private_feeds(runtime: Runtime, reso: ResoSandbox, reso_url: str) -> list[str]:
    user_id = await seed_user(runtime)
    feed_ids = []
    for n in range(FEEDS):
        reso.add_token(f"agent-{n}")
        seeded = await seed_connection(
            runtime, reso, reso_url, {f"K{n}": S.ACTIVE}, user_id=user_id, token=f"agent-{n}"
        )
        feed_ids.append(seeded.feed_id)
        # Changed an hour ago: outside the replication's clock-skew window, so an idle
        # cycle's page is empty and writes nothing (only the bookkeeping is left to count).
        reso.add_listing(f"K{n}", f"MLS-K{n}", "Active", modification_timestamp=AN_HOUR_AGO)
    return feed_ids


def _count_commits(runtime: Runtime) -> tuple[list[int], Any]:
    commits = [0]

    def count(*_: Any) -> None:
        commits[0] += 1
        import traceback

        frames = [f for f in traceback.extract_stack() if "mls_sync" in f.filename]
        print(
            "COMMIT",
            [f"{f.filename.split('mls_sync/')[-1]}:{f.lineno}:{f.name}" for f in frames][-3:],
        )

    engine = runtime.db.engine.sync_engine
    event.listen(engine, "commit", count)
    return commits, lambda: event.remove(engine, "commit", count)


async def test_an_idle_cycle_of_many_feeds_shares_its_bookkeeping_and_records_every_run(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    feed_ids = await _private_feeds(runtime, reso, reso_url)
    await runs.sync_everyone(runtime.engine, trigger="cron")  # each feed's first load
    reso.latency = 0.05  # the feeds' requests are in flight together, as with a real MLS

    commits, stop = _count_commits(runtime)
    try:
        outcome, aggregated = await runs.sync_everyone(runtime.engine, trigger="cron")
    finally:
        stop()

    assert outcome.success and len(aggregated.connections) == FEEDS
    # One feed on its own pays three (open, close, release): 36 for twelve, 40 with the
    # cycle's own (claiming, listing the feeds, draining the outbox, token care). Shared, it
    # is about ten (measured 9 to 11): a wave's feeds open, close and release together.
    assert commits[0] < 2 * FEEDS
    feed_runs = await runs_where(runtime.db, SyncRun.scope == "feed", SyncRun.trigger == "cron")
    latest = sorted(feed_runs, key=lambda r: r.started_at)[-FEEDS:]
    assert sorted(r.scope_id or "" for r in latest) == sorted(feed_ids)
    assert all(r.state == "finished" and r.success for r in latest)
    assert all((r.totals or {}).get("connections") == [] for r in latest)
    async with runtime.db.transaction() as session:
        for feed_id in feed_ids:
            feed = await session.get(MlsFeed, feed_id)
            assert feed is not None and feed.last_run_at is not None
            assert await session.leases.of(feed_id) is None  # given back


async def test_an_eventful_feed_in_a_cycle_is_recorded_with_its_members_rows(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    feed_ids = await _private_feeds(runtime, reso, reso_url)
    await runs.sync_everyone(runtime.engine, trigger="cron")
    reso.set_status("K3", "Pending")

    _, aggregated = await runs.sync_everyone(runtime.engine, trigger="cron")

    assert aggregated.updated_listings == 1
    member_rows = await runs_where(runtime.db, SyncRun.scope == "connection")
    assert len(member_rows) == 1 and member_rows[0].feed_run_id is not None
    async with runtime.db.transaction() as session:
        assert all([await session.leases.of(feed_id) is None for feed_id in feed_ids])
