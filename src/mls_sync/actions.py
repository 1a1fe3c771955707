"""The three user-facing operations (the product's "server actions").

Each returns `SyncActionResponse = {success, message, data}` exactly as the product spec's
response format. With `user_id`, an operation touches only that user's data: another user's id
answers exactly like an id that does not exist.
"""

from __future__ import annotations

from mls_sync.domain.results import AggregatedResult, SyncActionResponse, SyncResult
from mls_sync.sync.engine import NotFoundError, ProgressCallback, SyncEngine


async def sync_mls_status(
    connection_id: str,
    *,
    engine: SyncEngine,
    user_id: str | None = None,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
) -> SyncActionResponse[SyncResult]:
    """Sync every listing of one MLS connection."""
    try:
        outcome = await engine.sync_connection(
            connection_id, user_id=user_id, trigger=trigger, progress=progress
        )
    except NotFoundError as exc:
        return SyncActionResponse[SyncResult](success=False, message=str(exc), data=None)
    return SyncActionResponse[SyncResult](
        success=outcome.success, message=outcome.message, data=outcome.result
    )


async def sync_all_mls_connections(
    user_id: str,
    *,
    engine: SyncEngine,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
) -> SyncActionResponse[AggregatedResult]:
    """Sync every MLS connection of one user: summed totals plus one result per connection."""
    try:
        outcome, aggregated = await engine.sync_user(user_id, trigger=trigger, progress=progress)
    except NotFoundError as exc:
        return SyncActionResponse[AggregatedResult](success=False, message=str(exc), data=None)
    return SyncActionResponse[AggregatedResult](
        success=outcome.success, message=outcome.message, data=aggregated
    )


async def sync_listing_status(
    listing_id: str,
    *,
    engine: SyncEngine,
    user_id: str | None = None,
    trigger: str = "manual",
) -> SyncActionResponse[SyncResult]:
    """Sync one listing now."""
    try:
        outcome = await engine.sync_listing(listing_id, user_id=user_id, trigger=trigger)
    except NotFoundError as exc:
        return SyncActionResponse[SyncResult](success=False, message=str(exc), data=None)
    return SyncActionResponse[SyncResult](
        success=outcome.success, message=outcome.message, data=outcome.result
    )
