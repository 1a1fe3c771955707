"""The three user operations over HTTP, on the caller's own connections and listings.

They answer the product spec's `{success, message, data}` with 200, also when the sync itself
failed (`success: false`, e.g. an expired MLS connection). An id that is not the caller's is a
404, word for word the same as an id that does not exist; a connection that is being synced
right now is a 409 and nothing runs.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from mls_sync.api.deps import CurrentUser, ExecutorDep, looks_like_id
from mls_sync.api.schemas import ErrorOut, Responses
from mls_sync.domain.errors import CONNECTION_NOT_FOUND, LISTING_NOT_FOUND, Conflict, NotFound
from mls_sync.domain.results import AggregatedResult, SyncActionResponse, SyncResult
from mls_sync.executors import QueuedRun, is_queued

router = APIRouter(tags=["sync"])

_NOT_FOUND: Responses = {404: {"model": ErrorOut}}
_BUSY: Responses = {
    409: {"model": SyncActionResponse[SyncResult], "description": "already being synced"}
}
_QUEUED: Responses = {
    202: {
        "model": SyncActionResponse[QueuedRun],
        "description": "MLS_SYNC_EXECUTOR=procrastinate: deferred to the workers; follow "
        "`data.runId` at GET /api/sync-runs/{id}",
    }
}

R = TypeVar("R", bound=SyncActionResponse[Any])


@router.post("/api/sync", response_model=SyncActionResponse[AggregatedResult], responses=_QUEUED)
async def sync_my_connections(
    user: CurrentUser, executor: ExecutorDep
) -> SyncActionResponse[AggregatedResult] | JSONResponse:
    """Sync every MLS connection of the caller: summed totals plus one entry per connection
    (connections being synced right now are listed with `skipped: true`)."""
    response = await executor.sync_user(user.id, trigger="api")
    if is_queued(response):
        return JSONResponse(response.to_wire(), status_code=status.HTTP_202_ACCEPTED)
    return response


@router.post(
    "/api/mls-connections/{connection_id}/sync",
    response_model=SyncActionResponse[SyncResult],
    responses={**_NOT_FOUND, **_BUSY, **_QUEUED},
)
async def sync_connection(
    connection_id: str, user: CurrentUser, executor: ExecutorDep
) -> SyncActionResponse[SyncResult] | JSONResponse:
    """Sync every listing of one of the caller's MLS connections."""
    if not looks_like_id(connection_id):
        raise NotFound(CONNECTION_NOT_FOUND)
    return await _answer(executor.sync_connection(connection_id, user_id=user.id, trigger="api"))


@router.post(
    "/api/listings/{listing_id}/sync",
    response_model=SyncActionResponse[SyncResult],
    responses={**_NOT_FOUND, **_QUEUED},
)
async def sync_listing(
    listing_id: str, user: CurrentUser, executor: ExecutorDep
) -> SyncActionResponse[SyncResult] | JSONResponse:
    """Sync one of the caller's listings now."""
    if not looks_like_id(listing_id):
        raise NotFound(LISTING_NOT_FOUND)
    return await _answer(executor.sync_listing(listing_id, user_id=user.id, trigger="api"))


async def _answer(call: Awaitable[R]) -> R | JSONResponse:
    """The sync's answer; deferred: 202. A connection being synced right now is a 409 in the
    product's format (`NotFound` goes on to the app's handler: a 404)."""
    try:
        response = await call
    except Conflict as exc:
        refused = SyncActionResponse[Any](success=False, message=exc.message, data=None)
        return JSONResponse(refused.to_wire(), status_code=status.HTTP_409_CONFLICT)
    if is_queued(response):
        return JSONResponse(response.to_wire(), status_code=status.HTTP_202_ACCEPTED)
    return response
