"""Run history: every sync of a user's connections and listings, and the runs over everyone
(the cron endpoint's and the schedule's), which only the operator and the cron secret read."""

from __future__ import annotations

from datetime import datetime

from mls_sync.domain.errors import NotFound
from mls_sync.observability import history
from mls_sync.services.records import SyncRun, UnitOfWork
from mls_sync.store import repositories as repo

RUN_NOT_FOUND = "Sync run not found"


async def list_runs(
    uow: UnitOfWork, *, user_id: str | None, limit: int, before: datetime | None = None
) -> history.RunPage:
    """Newest first, `limit` at a time; `user_id=None`: every run (the operator)."""
    runs = await uow.runs.newest(user_id=user_id, limit=limit, before=history.as_utc(before))
    return history.page(runs, limit)


async def get_run(uow: UnitOfWork, run_id: str, *, user_id: str | None) -> history.RunDetail:
    """One run in full; another user's answers like a run that does not exist."""
    return history.detail(await _run(uow, run_id, user_id=user_id))


async def get_run_over_everyone(uow: UnitOfWork, run_id: str) -> history.RunDetail:
    """A run the cron endpoint or the schedule started: a user's own runs answer NotFound (the
    cron secret starts everyone's sync, it does not read users' history)."""
    run = await _run(uow, run_id, user_id=None)
    if run.user_id is not None:
        raise NotFound(RUN_NOT_FOUND)
    return history.detail(run)


async def _run(uow: UnitOfWork, run_id: str, *, user_id: str | None) -> SyncRun:
    run = await repo.get_run(uow, run_id, user_id=user_id)
    if run is None:
        raise NotFound(RUN_NOT_FOUND)
    return run
