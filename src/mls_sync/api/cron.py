"""The cron endpoint of the product spec: sync every active connection of every user."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mls_sync import actions
from mls_sync.api.deps import CronAuthorized, RuntimeDep
from mls_sync.api.schemas import ErrorOut
from mls_sync.domain.results import AggregatedResult, SyncActionResponse

router = APIRouter(tags=["sync"])


_CRON: dict[str, Any] = {
    "response_model": SyncActionResponse[AggregatedResult],
    "dependencies": [CronAuthorized],
    "responses": {
        401: {"model": ErrorOut, "description": "No or wrong `Authorization: Bearer` secret"},
        503: {"model": ErrorOut, "description": "CRON_SECRET is not configured"},
    },
}


# GET too: Vercel Cron (the product spec's first option) calls the path with GET, sending
# `Authorization: Bearer $CRON_SECRET` itself.
@router.get("/api/cron/sync-mls-status", operation_id="cron_sync_mls_status_get", **_CRON)
@router.post("/api/cron/sync-mls-status", operation_id="cron_sync_mls_status", **_CRON)
async def sync_mls_status(runtime: RuntimeDep) -> SyncActionResponse[AggregatedResult]:
    """Sync every active MLS connection of every user and answer when done: summed totals
    plus one entry per connection. A connection that another run is syncing right now is not
    synced twice: it is listed with `skipped: true` (and counted in `skippedConnections`)."""
    return await actions.sync_all_users(engine=runtime.engine, trigger="cron")
