"""A feed run's bookkeeping: its run row opened (with the feed and its members' holdings)
before the MLS is asked, and closed (with the feed's run time) after.

One feed on its own (an operator's `feeds sync`, a worker's job) opens and closes in a
transaction each. A cron cycle opens its feeds as their turns come (`Opener`) and closes its
quiet runs (no failure, no member with anything to report: nearly every run of an idle
market) by group commit (sync/group_commit.py, `QuietCloser`): feeds whose turns come
together open in one transaction and close in another, so the cost of a cycle's bookkeeping
grows with its waves of feeds, not with its feeds. A run where something happened is closed
by the engine on its own, with its members' rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mls_sync.domain.errors import FEED_NOT_FOUND, NotFound
from mls_sync.domain.results import ConnectionSyncResult
from mls_sync.store import deferred_runs
from mls_sync.store import repositories as repo
from mls_sync.store.interface import Storage, UnitOfWork
from mls_sync.store.models import MlsFeed
from mls_sync.store.types import utcnow
from mls_sync.sync.group_commit import GroupCommit
from mls_sync.sync.outcome import Outcome


@dataclass(frozen=True)
class OpenedRun:
    """A feed run about to ask the MLS: the feed as read, its members' holdings (member id
    -> listings held, oldest member first) and the run row it records into."""

    feed: MlsFeed
    counts: dict[str, int]
    run_id: str
    started: datetime


async def open_feed_run(
    db: Storage, feed_id: str, *, trigger: str, run_id: str | None = None
) -> OpenedRun:
    """One feed's run opened; `run_id`: a queued row (a worker's job) to record into.
    Raises NotFound."""
    started = utcnow()
    async with db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
        if feed is None:
            raise NotFound(FEED_NOT_FOUND)
        counts = await session.connections.holdings(feed.id)
        run = await deferred_runs.resume_or_start(session, run_id, **_feed_row(feed.id, trigger))
    return OpenedRun(feed, counts, run.id, started)


async def open_feed_runs(
    db: Storage, feed_ids: Collection[str], *, trigger: str
) -> dict[str, OpenedRun]:
    """Every feed of `feed_ids` opened in one transaction (three statements on SQL however
    many feeds); a feed removed since it was listed is left out."""
    started = utcnow()
    async with db.transaction() as session:
        feeds = await session.feeds.with_ids(feed_ids)
        holdings = await session.connections.holdings_of([feed.id for feed in feeds])
        rows = {
            feed.id: await repo.start_run(session, **_feed_row(feed.id, trigger), flush=False)
            for feed in feeds
        }
        await session.flush()  # one INSERT for every row (SQLAlchemy's insertmanyvalues)
    return {
        feed.id: OpenedRun(feed, holdings.get(feed.id, {}), rows[feed.id].id, started)
        for feed in feeds
    }


def _feed_row(feed_id: str, trigger: str) -> dict[str, Any]:
    # The operator's row (no user): members see their own connections' rows, and a
    # connection's `feedLoadedAt` says whether its feed is still loading.
    return {"trigger": trigger, "scope": "feed", "scope_id": feed_id, "user_id": None}


async def finish_row(
    session: UnitOfWork,
    run_id: str,
    outcome: Outcome,
    parts: Sequence[ConnectionSyncResult] | None = None,
) -> None:
    """`parts`: a feed run's per-connection results (its members that had something
    happen), kept in its totals: run history is per feed run, with per-connection results,
    and a worker's parent run sums them (sync/deferred.py)."""
    result = outcome.result
    totals = result.model_dump(mode="json", by_alias=True, exclude={"errors", "status_changes"})
    if parts is not None:
        totals["connections"] = [
            part.model_dump(mode="json", by_alias=True, exclude={"errors", "status_changes"})
            for part in parts
        ]
    await repo.finish_run(
        session,
        run_id,
        success=outcome.success,
        message=outcome.message,
        totals=totals,
        errors=[e.to_wire() for e in result.errors],
        status_changes=[c.to_wire() for c in result.status_changes],
    )


async def close_quiet(session: UnitOfWork, run: QuietRun) -> None:
    """A run that succeeded with nothing to report per member: its row, and the feed's run
    time (the next run is due a cadence after this one began: runs.is_due)."""
    await session.feeds.ran(run.feed_id, run.started)
    await finish_row(session, run.run_id, run.outcome, [])


@dataclass(frozen=True)
class QuietRun:
    feed_id: str
    run_id: str
    started: datetime
    outcome: Outcome


class QuietCloser(GroupCommit[QuietRun, None]):
    """A cron cycle's quiet runs, closed together (see the module's docstring)."""

    def __init__(self, db: Storage) -> None:
        async def write(runs: Sequence[QuietRun]) -> list[None]:
            async with db.transaction() as session:
                for run in runs:
                    await close_quiet(session, run)
            return [None] * len(runs)

        super().__init__(write)


class Opener(GroupCommit[str, OpenedRun | None]):
    """A cron cycle's feeds opened as their turns come, those whose turns come together in
    one transaction (None: a feed removed since the cycle listed it)."""

    def __init__(self, db: Storage, *, trigger: str) -> None:
        async def write(feed_ids: Sequence[str]) -> list[OpenedRun | None]:
            opened = await open_feed_runs(db, feed_ids, trigger=trigger)
            return [opened.get(feed_id) for feed_id in feed_ids]

        super().__init__(write)
