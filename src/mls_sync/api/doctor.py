"""`GET /api/doctor`: the caller's own health report (their MLS and platform connections, and
the platforms' API versions probed with their token), the same checks as `mls-sync doctor`.

It answers 200 whatever the outcome: the report is the answer, and `ok` says whether any check
failed (a 5xx would read as the service being down, which it is not)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter

from mls_sync.api.deps import CurrentUser, RuntimeDep
from mls_sync.api.schemas import ErrorOut, ResponseModel
from mls_sync.services import doctor as service

router = APIRouter(tags=["doctor"])


class CheckOut(ResponseModel):
    name: str
    status: Literal["pass", "warn", "fail"]
    detail: str


class DoctorOut(ResponseModel):
    ok: bool
    checks: list[CheckOut]

    @classmethod
    def of(cls, checks: list[service.Check]) -> DoctorOut:
        return cls(
            ok=service.is_ok(checks),
            checks=[CheckOut(name=c.name, status=c.status.value, detail=c.detail) for c in checks],
        )


def _now() -> datetime:
    return datetime.now(UTC)


# Tests replace it to move time instead of waiting for it.
clock: Callable[[], datetime] = _now


@router.get(
    "/api/doctor",
    response_model=DoctorOut,
    response_model_by_alias=True,
    responses={401: {"model": ErrorOut}},
)
async def get_doctor(user: CurrentUser, runtime: RuntimeDep) -> DoctorOut:
    """Checks of the caller's own connections (one cheap MLS request each, on their budget)
    and of the platforms' API versions; never another user's."""
    checks = await service.diagnose_user(
        user,
        settings=runtime.settings,
        db=runtime.db,
        cipher=runtime.cipher,
        # The engine's own client builder: the request draws on the budget the syncs use.
        mls_client=runtime.engine.mls_client,
        rest=runtime.engine.rest_credential,  # a suspension the probe meets is kept
        now=clock(),
    )
    return DoctorOut.of(checks)
