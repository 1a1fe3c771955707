"""The cron endpoint of the product spec: sync every active MLS feed once, for every user's
connection in it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from mls_sync.api.deps import CronAuthorized, ExecutorDep
from mls_sync.api.schemas import ErrorOut
from mls_sync.domain.results import AggregatedResult, SyncActionResponse
from mls_sync.executors import QueuedRun, is_queued

router = APIRouter(tags=["sync"])


_CRON: dict[str, Any] = {
    "response_model": SyncActionResponse[AggregatedResult],
    "dependencies": [CronAuthorized],
    "responses": {
        401: {"model": ErrorOut, "description": "No or wrong `Authorization: Bearer` secret"},
        503: {"model": ErrorOut, "description": "CRON_SECRET is not configured"},
        202: {
            "model": SyncActionResponse[QueuedRun],
            "description": "MLS_SYNC_EXECUTOR=procrastinate: deferred to the workers",
        },
    },
}


# GET too: Vercel Cron (the product spec's first option) calls the path with GET, sending
# `Authorization: Bearer $CRON_SECRET` itself.
@router.get("/api/cron/sync-mls-status", operation_id="cron_sync_mls_status_get", **_CRON)
@router.post("/api/cron/sync-mls-status", operation_id="cron_sync_mls_status", **_CRON)
async def sync_mls_status(
    executor: ExecutorDep,
) -> SyncActionResponse[AggregatedResult] | JSONResponse:
    """Sync every active MLS connection of every user and answer when done: summed totals
    plus one entry per connection. A connection that another run is syncing right now is not
    synced twice: it is listed with `skipped: true` (and counted in `skippedConnections`).
    With workers (MLS_SYNC_EXECUTOR=procrastinate): 202 at once, with the run's id."""
    response = await executor.sync_everyone(trigger="cron")
    if is_queued(response):
        return JSONResponse(response.to_wire(), status_code=status.HTTP_202_ACCEPTED)
    return response
