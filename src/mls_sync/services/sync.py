"""The product's three sync operations and the run over everyone, for every edge.

Each answers `SyncActionResponse = {success, message, data}` for a sync that ran (also when it
failed: an expired MLS connection is `success: false`), and raises a typed error for one that
could not start: `NotFound` (no such id, or not the caller's: both look alike) or `Conflict`
(the connection is being synced right now, and nothing ran). `user_id=None` is the operator.
"""

from __future__ import annotations

from mls_sync.domain.results import AggregatedResult, SyncActionResponse, SyncResult
from mls_sync.sync import runs
from mls_sync.sync.engine import ProgressCallback, SyncEngine
from mls_sync.sync.runs import ConnectionProgress


async def sync_connection(
    engine: SyncEngine,
    connection_id: str,
    *,
    user_id: str | None = None,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
) -> SyncActionResponse[SyncResult]:
    """One MLS connection: its feed caught up, its listings reported."""
    outcome = await runs.sync_connection(
        engine, connection_id, user_id=user_id, trigger=trigger, progress=progress
    )
    return SyncActionResponse[SyncResult](
        success=outcome.success, message=outcome.message, data=outcome.result
    )


async def sync_user(
    engine: SyncEngine,
    user_id: str,
    *,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
) -> SyncActionResponse[AggregatedResult]:
    """Every MLS connection of one user (each feed once): summed totals plus one result per
    connection."""
    outcome, aggregated = await runs.sync_user(engine, user_id, trigger=trigger, progress=progress)
    return SyncActionResponse[AggregatedResult](
        success=outcome.success, message=outcome.message, data=aggregated
    )


async def sync_feed(
    engine: SyncEngine,
    feed_id: str,
    *,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
    full: bool | None = None,
) -> SyncActionResponse[SyncResult]:
    """One MLS feed, for every member (the operator's): its first load, its changes, and a
    reconciliation when due or `full`."""
    outcome = await runs.sync_feed(engine, feed_id, trigger=trigger, progress=progress, full=full)
    return SyncActionResponse[SyncResult](
        success=outcome.success, message=outcome.message, data=outcome.result
    )


async def sync_listing(
    engine: SyncEngine, listing_id: str, *, user_id: str | None = None, trigger: str = "manual"
) -> SyncActionResponse[SyncResult]:
    """One listing, now."""
    outcome = await engine.sync_listing(listing_id, user_id=user_id, trigger=trigger)
    return SyncActionResponse[SyncResult](
        success=outcome.success, message=outcome.message, data=outcome.result
    )


async def sync_everyone(
    engine: SyncEngine,
    *,
    trigger: str = "cron",
    on_connection_done: ConnectionProgress | None = None,
    due_only: bool = False,
) -> SyncActionResponse[AggregatedResult]:
    """Every active MLS feed once, for every member (the cron endpoint, the schedule, `sync
    all`): connections of feeds being synced already are skipped and listed with `skipped:
    true`. `due_only`: only feeds whose cadence has come (the scheduler's ticks)."""
    outcome, aggregated = await runs.sync_everyone(
        engine, trigger=trigger, on_connection_done=on_connection_done, due_only=due_only
    )
    return SyncActionResponse[AggregatedResult](
        success=outcome.success, message=outcome.message, data=aggregated
    )
