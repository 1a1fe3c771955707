"""The caller's run history: every sync of their connections and listings, newest first, and
one run in full (state, progress, and the final response in the product spec's format)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from mls_sync.api.deps import CronAuthorized, CurrentUser, SessionDep, looks_like_id
from mls_sync.api.schemas import ErrorOut
from mls_sync.domain.errors import NotFound
from mls_sync.observability import history
from mls_sync.services import runs

router = APIRouter(tags=["sync runs"])


def _an_instant(value: datetime | None) -> datetime | None:
    """A `before` that names an instant (0001-01-01T00:00:00+14:00 is before year 1 in UTC:
    it answered 500)."""
    utc = history.as_utc(value)
    if utc is None:
        return None
    try:
        return utc.astimezone(UTC)
    except OverflowError:
        raise ValueError("an instant between the years 1 and 9999 in UTC") from None


@router.get("/api/sync-runs", response_model=history.RunPage, response_model_by_alias=True)
async def list_sync_runs(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        datetime | None,
        Query(
            description="only runs started before this instant (the previous page's `nextBefore`)"
        ),
        AfterValidator(_an_instant),
    ] = None,
) -> history.RunPage:
    """The caller's runs, newest first, `limit` at a time."""
    return await runs.list_runs(session, user_id=user.id, limit=limit, before=before)


@router.get(
    "/api/sync-runs/{run_id}",
    response_model=history.RunDetail,
    response_model_by_alias=True,
    responses={404: {"model": ErrorOut}},
)
async def get_sync_run(run_id: str, user: CurrentUser, session: SessionDep) -> history.RunDetail:
    """One of the caller's runs: another user's answers 404 like a run that does not exist."""
    if not looks_like_id(run_id):
        raise NotFound(runs.RUN_NOT_FOUND)
    return await runs.get_run(session, run_id, user_id=user.id)


@router.get(
    "/api/cron/sync-runs/{run_id}",
    response_model=history.RunDetail,
    response_model_by_alias=True,
    responses={404: {"model": ErrorOut}},
    dependencies=[CronAuthorized],
)
async def get_cron_sync_run(run_id: str, session: SessionDep) -> history.RunDetail:
    """A run over every connection (the cron endpoint's, the schedule's), by the id the cron
    endpoint answered with, under the cron secret. Runs of a user's own syncs answer 404: the
    cron secret starts everyone's sync, it does not read users' run history."""
    if not looks_like_id(run_id):
        raise NotFound(runs.RUN_NOT_FOUND)
    return await runs.get_run_over_everyone(session, run_id)
