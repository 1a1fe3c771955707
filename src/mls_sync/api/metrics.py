"""`GET /metrics`: Prometheus text format. Open unless MLS_SYNC_METRICS_TOKEN is set, when it
asks for that bearer token (Prometheus sends it with `authorization: {credentials_file}`);
open, keep it on the private network Prometheus scrapes from (see README, Monitoring)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from mls_sync.api.deps import MetricsAuthorized, RuntimeDep
from mls_sync.observability.metrics import METRICS

router = APIRouter(tags=["monitoring"])
log = structlog.get_logger(__name__)


@router.get(
    "/metrics",
    response_class=Response,
    include_in_schema=True,
    dependencies=[MetricsAuthorized],
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Run, MLS and unpublish counters of this process, and connection states and the
    outbox read from the database now."""
    try:
        await METRICS.store.refresh(runtime.store_snapshot)
    except Exception as exc:  # the counters are still worth serving; the gauges go stale
        log.warning("metrics: database not readable", error=type(exc).__name__)
    return Response(METRICS.render(), media_type=CONTENT_TYPE_LATEST)
