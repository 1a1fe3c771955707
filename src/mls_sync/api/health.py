"""Liveness and readiness, for load balancers and orchestrators (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mls_sync.api.deps import RuntimeDep
from mls_sync.api.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is up and answering."""
    return HealthOut()


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut}})
async def readyz(runtime: RuntimeDep) -> ReadyOut | JSONResponse:
    """The database answers; 503 while it does not."""
    try:
        await runtime.db.ping()
    except Exception as exc:  # any failure to reach it means "not ready", never a 500
        body = ReadyOut(status="unavailable", database=f"unreachable: {type(exc).__name__}")
        return JSONResponse(body.model_dump(), status_code=503)
    return ReadyOut(status="ok", database="ok")
