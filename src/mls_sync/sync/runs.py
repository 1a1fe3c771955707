"""Syncs that honour the engine's per-connection guard: one connection, a user's, everyone's.

Every entry point (API, CLI, scheduler, cron endpoint) comes through here, so a connection is
never synced twice at once. A run over many connections claims all of them before it starts
any: a second run that arrives meanwhile skips (and reports) every connection the first still
has to do, instead of racing it for them; each claim is released as soon as its connection is
done, so a finished connection can be synced again at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from mls_sync.domain.errors import NotFound
from mls_sync.domain.results import AggregatedResult, ConnectionSyncResult, SyncResult
from mls_sync.observability.metrics import METRICS
from mls_sync.observability.reports import RunReport, notify
from mls_sync.store import repositories as repo
from mls_sync.sync.engine import Outcome, ProgressCallback, SyncEngine, summary
from mls_sync.sync.guard import SYNC_IN_PROGRESS, SyncInProgressError, acquire_many, hold

log = structlog.get_logger(__name__)

# Different connections mostly use different credentials and budgets, so several run side by
# side; a bound keeps one cron run over thousands of connections from opening them all at once.
# A connection spends most of its run waiting for its own credential's budget (2 requests/s),
# so a run's speed grows with this bound: at 8, a full check of 100 connections took 13 rounds
# of those waits (10.4 s against a 1 s rate-limit floor; 6.4 s at 64+, see README Performance).
CONNECTIONS_AT_ONCE = 64

# Called after each connection of a run with (connections just finished, connections in run).
ConnectionProgress = Callable[[int, int], None]


async def sync_connection(
    engine: SyncEngine,
    connection_id: str,
    *,
    user_id: str | None = None,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
    run_id: str | None = None,
) -> Outcome:
    """One connection; raises NotFound, or SyncInProgressError when it is being synced.
    `run_id`: a queued run row to record into (a worker running a deferred sync)."""
    if user_id is not None:
        # Ownership first: another user's busy connection must look missing, not busy.
        async with engine.db.transaction() as session:
            if await repo.get_mls_connection(session, connection_id, user_id=user_id) is None:
                raise NotFound("MLS connection not found")
    async with hold(engine.guard, connection_id) as held:
        if not held:
            raise SyncInProgressError()
        return await engine.sync_connection(
            connection_id, user_id=user_id, trigger=trigger, progress=progress, run_id=run_id
        )


async def sync_user(
    engine: SyncEngine,
    user_id: str,
    *,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
) -> tuple[Outcome, AggregatedResult]:
    """Every connection of the user (expired ones too: they report that they need
    re-authentication); raises NotFound for an unknown user."""
    async with engine.db.transaction() as session:
        if await session.users.find(user_id) is None:
            raise NotFound("User not found")
        connection_ids = [c.id for c in await session.connections.of_user(user_id)]
    return await sync_connections(engine, connection_ids, trigger=trigger, progress=progress)


async def sync_everyone(
    engine: SyncEngine,
    *,
    trigger: str = "cron",
    on_connection_done: ConnectionProgress | None = None,
) -> tuple[Outcome, AggregatedResult]:
    """Every active connection of every user: what the cron endpoint and the scheduler run."""
    async with engine.db.transaction() as session:
        connection_ids = await session.connections.active_ids()
    log.info("Starting MLS status sync job...", trigger=trigger, connections=len(connection_ids))
    started_at = datetime.now(UTC)
    outcome, aggregated = await sync_connections(
        engine, connection_ids, trigger=trigger, on_connection_done=on_connection_done
    )
    report = RunReport(
        trigger, outcome.success, outcome.message, aggregated, started_at, datetime.now(UTC)
    )
    await notify(engine.run_observers, report)
    await engine.unpublisher.keep_tokens_alive()
    log.info(
        outcome.message,
        trigger=trigger,
        success=outcome.success,
        skipped_connections=aggregated.skipped_connections,
    )
    return outcome, aggregated


async def sync_connections(
    engine: SyncEngine,
    connection_ids: Sequence[str],
    *,
    trigger: str,
    progress: ProgressCallback | None = None,
    on_connection_done: ConnectionProgress | None = None,
    at_once: int = CONNECTIONS_AT_ONCE,
) -> tuple[Outcome, AggregatedResult]:
    """Claim every connection that is free, sync the claimed ones, report the others skipped."""
    unreleased: set[str] = set()
    outcomes: dict[str, Outcome] = {}
    gate = asyncio.Semaphore(at_once)

    async def run(connection_id: str) -> None:
        try:
            async with gate:
                outcomes[connection_id] = await _sync_claimed(
                    engine, connection_id, trigger=trigger, progress=progress
                )
        finally:
            unreleased.discard(connection_id)
            await engine.guard.release(connection_id)
        if on_connection_done is not None:
            on_connection_done(1, len(connection_ids))

    try:
        unreleased.update(await acquire_many(engine.guard, connection_ids))
        claimed = [cid for cid in connection_ids if cid in unreleased]
        await asyncio.gather(*(run(cid) for cid in claimed))
    finally:
        # Only reached with claims left when cancelled (shutdown) or a claim failed half-way.
        for connection_id in unreleased:
            await engine.guard.release(connection_id)
    return _aggregate(connection_ids, outcomes)


async def _sync_claimed(
    engine: SyncEngine,
    connection_id: str,
    *,
    trigger: str,
    progress: ProgressCallback | None,
) -> Outcome:
    try:
        return await engine.sync_connection(connection_id, trigger=trigger, progress=progress)
    except NotFound as exc:  # removed since the run listed it
        return Outcome(False, str(exc), SyncResult())
    except Exception as exc:  # one connection's failure never stops the others
        log.exception("connection sync failed", connection_id=connection_id, trigger=trigger)
        METRICS.error("internal")
        return Outcome(False, f"Internal error: {type(exc).__name__}", SyncResult())


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
