"""The three user-facing operations (the product's "server actions").

Each returns `SyncActionResponse = {success, message, data}` exactly as the product spec's
response format. With `user_id`, an operation touches only that user's data: another user's id
answers exactly like an id that does not exist.
"""

from __future__ import annotations

from mls_sync.domain.results import AggregatedResult, SyncActionResponse, SyncResult
from mls_sync.store import repositories as repo
from mls_sync.sync import runs
from mls_sync.sync.engine import NotFoundError, ProgressCallback, SyncEngine
from mls_sync.sync.guard import SYNC_IN_PROGRESS, SyncInProgressError, hold

# Bringing listings under sync (used by the management routes and commands).
from mls_sync.sync.importer import (  # noqa: F401 (re-exported for api and cli)
    ImportReport,
    ListingExistsError,
    ListingRejectedError,
    MlsUnavailableError,
    import_listings,
    register_listing,
)
from mls_sync.sync.runs import ConnectionProgress


async def sync_mls_status(
    connection_id: str,
    *,
    engine: SyncEngine,
    user_id: str | None = None,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
) -> SyncActionResponse[SyncResult]:
    """Sync every listing of one MLS connection (unless it is being synced right now: then
    the answer says so and nothing runs)."""
    try:
        outcome = await runs.sync_connection(
            engine, connection_id, user_id=user_id, trigger=trigger, progress=progress
        )
    except NotFoundError as exc:
        return SyncActionResponse[SyncResult](success=False, message=str(exc), data=None)
    except SyncInProgressError:
        return SyncActionResponse[SyncResult](success=False, message=SYNC_IN_PROGRESS, data=None)
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
        outcome, aggregated = await runs.sync_user(
            engine, user_id, trigger=trigger, progress=progress
        )
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


async def sync_all_users(
    *,
    engine: SyncEngine,
    trigger: str = "cron",
    on_connection_done: ConnectionProgress | None = None,
) -> SyncActionResponse[AggregatedResult]:
    """Sync every active MLS connection of every user (the cron endpoint, the scheduler and
    `mls-sync sync all`): summed totals plus one result per connection. Connections that are
    being synced already are skipped and listed with `skipped: true`."""
    outcome, aggregated = await runs.sync_everyone(
        engine, trigger=trigger, on_connection_done=on_connection_done
    )
    return SyncActionResponse[AggregatedResult](
        success=outcome.success, message=outcome.message, data=aggregated
    )


async def remove_mls_connection(connection_id: str, *, engine: SyncEngine) -> bool:
    """Delete a connection with its listings and posts, unless it is being synced right now
    (then False, and nothing is deleted): a run never loses its rows half-way."""
    async with hold(engine.guard, connection_id) as held:
        if not held:
            return False
        async with engine.db.transaction() as session:
            await repo.delete_mls_connection(session, connection_id)
        return True
