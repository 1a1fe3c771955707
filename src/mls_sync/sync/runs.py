"""Syncs that honour the engine's per-feed guard: one connection, a user's, everyone's.

Every entry point (API, CLI, scheduler, cron endpoint) comes through here, so a feed is never
replicated twice at once. A connection's sync is its feed's run: another member's sync of the
same feed at that moment makes it wait its turn (`SyncInProgressError`, 409). A run over many
feeds claims all of them before it starts any: a second run that arrives meanwhile skips (and
reports) every connection of the feeds the first still has to do, instead of racing it for
them; each claim is released as soon as its feed is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from mls_sync.domain.errors import USER_NOT_FOUND, Conflict, NotFound, internal_error
from mls_sync.domain.results import AggregatedResult, ConnectionSyncResult, SyncResult
from mls_sync.domain.status import ConnectionState
from mls_sync.observability.metrics import METRICS
from mls_sync.observability.reports import RunReport, notify
from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import MlsFeed
from mls_sync.sync.bookkeeping import Opener, QuietCloser
from mls_sync.sync.engine import Outcome, ProgressCallback, SyncEngine, summary
from mls_sync.sync.group_commit import GroupCommit
from mls_sync.sync.guard import (
    SYNC_IN_PROGRESS,
    SyncInProgressError,
    acquire_many,
    hold,
    release_many,
)

log = structlog.get_logger(__name__)

# Different feeds use different credentials and budgets, so several run side by side; a bound
# keeps one cron run over thousands of private feeds from opening them all at once. A feed
# spends most of its run waiting for its credential's budget (2 requests/s), so a run's speed
# grows with this bound (see the docs' Performance page).
FEEDS_AT_ONCE = 64
RAN_SINCE_SCHEDULED = "This MLS feed ran since this scheduled run was queued"

# Called after each feed of a run with (connections just finished, connections in the run).
ConnectionProgress = Callable[[int, int], None]
# Which feeds a run syncs, and the member connections it reports for each (in order).
FeedPlan = dict[str, list[str]]


async def sync_connection(
    engine: SyncEngine,
    connection_id: str,
    *,
    user_id: str | None = None,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
) -> Outcome:
    """One connection (its feed's run); raises NotFound, or SyncInProgressError when its
    feed is being replicated. `run_id`: a queued run row to record into (a worker running a
    deferred sync)."""
    # Ownership first: another user's busy connection must look missing, not busy.
    feed_id = await engine.feed_of_connection(connection_id, user_id=user_id)
    async with hold(engine.guard, feed_id) as held:
        if not held:
            raise SyncInProgressError()
        return await engine.sync_connection(
            connection_id, user_id=user_id, trigger=trigger, progress=progress, run_id=run_id
        )


async def sync_feed(
    engine: SyncEngine,
    feed_id: str,
    *,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
    full: bool | None = None,
    run_id: str | None = None,
    only_if_due: bool = False,
) -> Outcome:
    """One feed's run over all its members (the operator's `feeds sync`, a worker's job for
    everyone's run); raises NotFound, or SyncInProgressError when it is being replicated.
    `full=True` reconciles it too; `run_id`: a queued row to record into. `only_if_due` (a
    scheduled job): raises NotDueError when a run began since the job was queued."""
    async with hold(engine.guard, feed_id) as held:
        if not held:
            raise SyncInProgressError()
        if only_if_due:
            await _still_due(engine, feed_id)
        ran = await engine.sync_feed(
            feed_id, trigger=trigger, progress=progress, full=full, run_id=run_id
        )
    return ran.whole()


async def sync_user(
    engine: SyncEngine,
    user_id: str,
    *,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
) -> tuple[Outcome, AggregatedResult]:
    """Each feed of the user's connections once (expired ones too: they report that they
    need re-authentication), reporting the user's connections only; raises NotFound for an
    unknown user."""
    async with engine.db.transaction() as session:
        if await session.users.find(user_id) is None:
            raise NotFound(USER_NOT_FOUND)
        plan: FeedPlan = {}
        for connection in await session.connections.of_user(user_id):
            plan.setdefault(connection.feed_id, []).append(connection.id)
    return await sync_feeds(engine, plan, trigger=trigger, progress=progress, asked=True)


class NotDueError(Conflict):
    """A scheduled feed job found that the feed ran since the tick queued it."""

    def __init__(self) -> None:
        super().__init__(RAN_SINCE_SCHEDULED)


async def _still_due(engine: SyncEngine, feed_id: str) -> None:
    """Checked under the feed's lease: a tick decides from a snapshot, and a run of the feed
    may finish between that snapshot and this job (or this job be a second one queued while
    the first was already running), so the cadence is checked again where nobody else can
    move it."""
    async with engine.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
    if feed is not None and not is_due(feed, datetime.now(UTC)):
        raise NotDueError()


def is_due(feed: MlsFeed, now: datetime) -> bool:
    """A feed's cadence has passed since its last run began (less a tenth, so a schedule
    ticking at the cadence never misses a beat by a few seconds), and no vendor suspension
    of its credential is running."""
    if feed.suspension(now) is not None:
        return False  # the vendor's cool-down: the first tick after it resumes
    if feed.last_run_at is None:
        return True
    return feed.last_run_at + timedelta(seconds=feed.cadence_seconds * 0.9) <= now


async def due_feeds(session: UnitOfWork, *, due_only: bool) -> list[str]:
    """The active feeds, oldest first; `due_only`: those whose cadence has come and that
    nobody is running now."""
    if not due_only:
        return await session.feeds.active_ids()
    now = datetime.now(UTC)
    due = []
    for feed in await session.feeds.all():
        if feed.state != ConnectionState.ACTIVE or not is_due(feed, now):
            continue
        lease = await session.leases.of(feed.id)
        if lease is not None and lease.expires_at > now:
            continue  # running now (its lease is live): its run is this cadence's
        due.append(feed.id)
    return due


async def sync_everyone(
    engine: SyncEngine,
    *,
    trigger: str = "cron",
    on_connection_done: ConnectionProgress | None = None,
    due_only: bool = False,
) -> tuple[Outcome, AggregatedResult]:
    """Every active feed once, reporting every member: what the cron endpoint and the
    scheduler run. `due_only` (the scheduler's ticks): only feeds whose cadence has come."""
    async with engine.db.transaction() as session:
        plan: FeedPlan = {
            feed_id: [c.id for c in await session.connections.of_feed(feed_id)]
            for feed_id in await due_feeds(session, due_only=due_only)
        }
    connections = sum(len(members) for members in plan.values())
    log.info(
        "Starting MLS status sync job...", trigger=trigger, feeds=len(plan), connections=connections
    )
    started_at = datetime.now(UTC)
    outcome, aggregated = await sync_feeds(
        engine, plan, trigger=trigger, on_connection_done=on_connection_done
    )
    report = RunReport(
        trigger, outcome.success, outcome.message, aggregated, started_at, datetime.now(UTC)
    )
    await notify(engine.run_observers, report)
    # Jobs that failed before and are due again (their own listings' runs drain the rest).
    await engine.unpublisher.drain()
    await engine.unpublisher.keep_tokens_alive()
    log.info(
        outcome.message,
        trigger=trigger,
        success=outcome.success,
        skipped_connections=aggregated.skipped_connections,
    )
    return outcome, aggregated


async def sync_feeds(
    engine: SyncEngine,
    plan: FeedPlan,
    *,
    trigger: str,
    progress: ProgressCallback | None = None,
    on_connection_done: ConnectionProgress | None = None,
    asked: bool = False,
    at_once: int = FEEDS_AT_ONCE,
) -> tuple[Outcome, AggregatedResult]:
    """Claim every feed that is free, run the claimed ones, report the others' connections
    skipped. `asked`: every reported connection gets a run row (a user's sync). The feeds
    whose turns come (or end) together share their bookkeeping's transactions: opening their
    runs, closing the quiet ones, giving their leases back (sync/bookkeeping.py)."""
    unreleased: set[str] = set()
    outcomes: dict[str, Outcome] = {}
    gate = asyncio.Semaphore(at_once)
    total = sum(len(members) for members in plan.values())
    books = Books(
        Opener(engine.db, trigger=trigger),
        QuietCloser(engine.db),
        GroupCommit(lambda feed_ids: _release(engine, feed_ids)),
    )

    async def run(feed_id: str) -> None:
        members = plan[feed_id]
        try:
            async with gate:
                outcomes.update(
                    await _run_claimed(
                        engine,
                        feed_id,
                        members,
                        trigger=trigger,
                        progress=progress,
                        asked=asked,
                        books=books,
                    )
                )
        finally:
            unreleased.discard(feed_id)
            await books.releases.submit(feed_id)
        if on_connection_done is not None:
            on_connection_done(len(members), total)

    try:
        unreleased.update(await acquire_many(engine.guard, list(plan)))
        claimed = [feed_id for feed_id in plan if feed_id in unreleased]
        await asyncio.gather(*(run(feed_id) for feed_id in claimed))
    finally:
        # Only reached with claims left when cancelled (shutdown) or a claim failed half-way.
        await release_many(engine.guard, sorted(unreleased))
    order = [cid for members in plan.values() for cid in members]
    return _aggregate(order, outcomes)


async def _run_claimed(
    engine: SyncEngine,
    feed_id: str,
    members: list[str],
    *,
    trigger: str,
    progress: ProgressCallback | None,
    asked: bool,
    books: Books,
) -> dict[str, Outcome]:
    try:
        ran = await engine.sync_feed(
            feed_id,
            trigger=trigger,
            progress=progress,
            asked=dict.fromkeys(members) if asked else None,
            opener=books.opener,
            quiet=books.quiet,
        )
    except NotFound as exc:  # removed since the run listed it
        return {cid: Outcome(False, str(exc), SyncResult()) for cid in members}
    except Exception as exc:  # one feed's failure never stops the others
        log.exception("feed sync failed", feed_id=feed_id, trigger=trigger)
        METRICS.error("internal")
        failed = internal_error(exc)
        return {cid: Outcome(False, failed, SyncResult()) for cid in members}
    return {cid: ran.outcome_for(cid) for cid in members}


@dataclass(frozen=True)
class Books:
    """A cycle's shared bookkeeping (sync/bookkeeping.py)."""

    opener: Opener
    quiet: QuietCloser
    releases: GroupCommit[str, None]


async def _release(engine: SyncEngine, feed_ids: Sequence[str]) -> list[None]:
    await release_many(engine.guard, feed_ids)
    return [None] * len(feed_ids)


def _aggregate(
    connection_ids: Sequence[str], outcomes: dict[str, Outcome]
) -> tuple[Outcome, AggregatedResult]:
    aggregated = AggregatedResult()
    for connection_id in connection_ids:
        outcome = outcomes.get(connection_id)
        if outcome is None:
            aggregated.skipped_connections += 1
            aggregated.connections.append(
                ConnectionSyncResult(
                    connection_id=connection_id,
                    success=False,
                    message=SYNC_IN_PROGRESS,
                    skipped=True,
                )
            )
            continue
        aggregated.add(outcome.result)
        aggregated.connections.append(
            ConnectionSyncResult(
                connection_id=connection_id,
                success=outcome.success,
                message=outcome.message,
                **outcome.result.model_dump(),
            )
        )
    attempted = len(outcomes)
    succeeded = sum(1 for o in outcomes.values() if o.success)
    skipped = aggregated.skipped_connections
    if attempted == 0 and skipped:
        message = f"A sync is already in progress for all {skipped} MLS connections; none started"
    else:
        message = f"Synced {succeeded} of {attempted} MLS connections"
        if skipped:
            message += f" ({skipped} skipped: a sync of them was already in progress)"
        message += ": " + summary(aggregated)
    # A run fails only when every connection it tried failed; skipped ones are someone else's.
    success = attempted == 0 or succeeded > 0
    return Outcome(success, message, aggregated), aggregated


def aggregate_outcomes(
    connection_ids: Sequence[str], outcomes: dict[str, Outcome]
) -> tuple[Outcome, AggregatedResult]:
    """The summed answer of a run over many connections, in the order given; a connection
    without an outcome was skipped. Also used for runs whose connections workers synced."""
    return _aggregate(connection_ids, outcomes)
