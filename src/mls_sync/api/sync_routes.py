"""The three user operations over HTTP, on the caller's own connections and listings.

They answer the product spec's `{success, message, data}` with 200, also when the sync itself
failed (`success: false`, e.g. an expired MLS connection). An id that is not the caller's is a
404, word for word the same as an id that does not exist; a connection that is being synced
right now is a 409 and nothing runs.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse

from mls_sync import actions
from mls_sync.api.deps import CurrentUser, ExecutorDep, looks_like_id
from mls_sync.api.schemas import ErrorOut
from mls_sync.domain.results import AggregatedResult, SyncActionResponse, SyncResult
from mls_sync.executor import QueuedRun, is_queued

router = APIRouter(tags=["sync"])

CONNECTION_NOT_FOUND = "MLS connection not found"
LISTING_NOT_FOUND = "Listing not found"
_NOT_FOUND = {404: {"model": ErrorOut}}
_BUSY = {409: {"model": SyncActionResponse[SyncResult], "description": "already being synced"}}
_QUEUED = {
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
        raise HTTPException(status.HTTP_404_NOT_FOUND, CONNECTION_NOT_FOUND)
    response = await executor.sync_connection(connection_id, user_id=user.id, trigger="api")
    return _answer(response, CONNECTION_NOT_FOUND)


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
        raise HTTPException(status.HTTP_404_NOT_FOUND, LISTING_NOT_FOUND)
    response = await executor.sync_listing(listing_id, user_id=user.id, trigger="api")
    return _answer(response, LISTING_NOT_FOUND)


def _answer(response: R, not_found: str) -> R | JSONResponse:
    if is_queued(response):
        return JSONResponse(response.to_wire(), status_code=status.HTTP_202_ACCEPTED)
    if response.success or response.data is not None:
        return response
    if response.message == not_found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, not_found)
    if response.message == actions.SYNC_IN_PROGRESS:
        return JSONResponse(response.to_wire(), status_code=status.HTTP_409_CONFLICT)
    return response
