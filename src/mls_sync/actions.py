"""The three user-facing operations as Python functions (the product's "server actions").

Each returns `SyncActionResponse = {success, message, data}` exactly as the product spec's
response format, also when the sync could not start: then `success` is false and `message`
says why (the service's typed error, rendered). With `user_id`, an operation touches only that
user's data: another user's id answers exactly like an id that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from mls_sync.domain.errors import ServiceError
from mls_sync.domain.results import AggregatedResult, SyncActionResponse, SyncResult
from mls_sync.services import sync
from mls_sync.sync.engine import ProgressCallback, SyncEngine
from mls_sync.sync.runs import ConnectionProgress

R = TypeVar("R", SyncResult, AggregatedResult)


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
    return await _answer(
        sync.sync_connection(
            engine, connection_id, user_id=user_id, trigger=trigger, progress=progress
        )
    )


async def sync_all_mls_connections(
    user_id: str,
    *,
    engine: SyncEngine,
    trigger: str = "manual",
    progress: ProgressCallback | None = None,
) -> SyncActionResponse[AggregatedResult]:
    """Sync every MLS connection of one user: summed totals plus one result per connection."""
    return await _answer(sync.sync_user(engine, user_id, trigger=trigger, progress=progress))


async def sync_listing_status(
    listing_id: str,
    *,
    engine: SyncEngine,
    user_id: str | None = None,
    trigger: str = "manual",
) -> SyncActionResponse[SyncResult]:
    """Sync one listing now."""
    return await _answer(sync.sync_listing(engine, listing_id, user_id=user_id, trigger=trigger))


async def sync_all_users(
    *,
    engine: SyncEngine,
    trigger: str = "cron",
    on_connection_done: ConnectionProgress | None = None,
    due_only: bool = False,
) -> SyncActionResponse[AggregatedResult]:
    """Sync every active MLS feed once, for every connection in it (the cron endpoint, the
    scheduler and `mls-sync sync all`): summed totals plus one result per connection.
    Connections whose feed is being synced already are skipped and listed with `skipped:
    true`. `due_only` (the scheduler): only feeds whose cadence has come."""
    return await sync.sync_everyone(
        engine, trigger=trigger, on_connection_done=on_connection_done, due_only=due_only
    )


async def _answer(call: Awaitable[SyncActionResponse[R]]) -> SyncActionResponse[R]:
    try:
        return await call
    except ServiceError as exc:
        return SyncActionResponse(success=False, message=exc.message, data=None)
