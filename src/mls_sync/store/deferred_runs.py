"""Run rows of deferred syncs (worker/): queued by whoever asks, run and finished by a worker.

A run over several connections (a user's, everyone's) is a parent row with one child row per
connection; each child is one job. The parent's `progress` counts finished children, and the
parent is finished with the summed result when the last child finishes (sync/deferred.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from mls_sync.store import repositories as repo
from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import SyncRun
from mls_sync.store.open import sql_session
from mls_sync.store.types import utcnow

QUEUED = "queued"
RUNNING = "running"
FINISHED = "finished"
# Runs deferred to workers exist only with them, on PostgreSQL (the settings insist).
WORKERS = "Workers (MLS_SYNC_EXECUTOR=procrastinate)"


async def queue_run(
    session: UnitOfWork,
    *,
    trigger: str,
    scope: str,
    scope_id: str | None,
    user_id: str | None,
    parent_id: str | None = None,
    connections: int = 1,
) -> SyncRun:
    run = SyncRun(
        trigger=trigger,
        scope=scope,
        scope_id=scope_id,
        user_id=user_id,
        parent_id=parent_id,
        state=QUEUED,
        totals={},
        errors=[],
        status_changes=[],
        progress={"connectionsDone": 0, "connectionsTotal": connections},
    )
    session.add(run)
    await session.flush()
    return run


async def resume_or_start(session: UnitOfWork, run_id: str | None, **fields: Any) -> SyncRun:
    """The queued run `run_id` resumed (a worker's job records into the row it was queued
    with), or, without one (or if it is gone), a new run of `fields` (`repo.start_run`'s)."""
    run = await resume_run(session, run_id) if run_id else None
    return run if run is not None else await repo.start_run(session, **fields)


async def resume_run(session: UnitOfWork, run_id: str) -> SyncRun | None:
    """Mark a queued run (or one whose worker died mid-way) as running from now."""
    run = await session.get(SyncRun, run_id)
    if run is None:
        return None
    run.state = RUNNING
    run.started_at = utcnow()
    run.finished_at = None
    return run


async def finish_unrun(
    session: UnitOfWork, run_id: str, *, message: str, skipped: bool = False
) -> None:
    """Finish a run whose sync never happened (refused, gave up, or left to another run)."""
    run = await session.get(SyncRun, run_id)
    if run is None or run.state == FINISHED:
        return
    run.state = FINISHED
    run.finished_at = utcnow()
    run.success = False
    run.message = message
    run.totals = {"skipped": True} if skipped else {}
    progress = dict(run.progress or {})
    progress["connectionsDone"] = progress.get("connectionsTotal", 1)
    run.progress = progress


async def start_fan_out(
    session: UnitOfWork, parent: SyncRun, child_ids: Sequence[str], *, scope: str = "connection"
) -> list[SyncRun]:
    """The parent starts running with one queued child per connection (or per feed, for a
    run over everyone), in one transaction, so no child can finish before its siblings
    exist."""
    children = [
        SyncRun(
            trigger=parent.trigger,
            scope=scope,
            scope_id=connection_id,
            user_id=parent.user_id,
            parent_id=parent.id,
            state=QUEUED,
            totals={},
            errors=[],
            status_changes=[],
            progress={"connectionsDone": 0, "connectionsTotal": 1},
        )
        for connection_id in child_ids
    ]
    for child in children:
        session.add(child)
    parent.state = RUNNING
    parent.started_at = utcnow()
    parent.progress = {"connectionsDone": 0, "connectionsTotal": len(children)}
    await session.flush()
    return children


async def lock_family(session: UnitOfWork, parent_id: str) -> tuple[SyncRun | None, list[SyncRun]]:
    """The parent row, locked until the transaction ends (two children finishing at once
    settle it one after the other), and its children."""
    sql = sql_session(session, WORKERS)
    parent = (
        await sql.execute(select(SyncRun).where(SyncRun.id == parent_id).with_for_update())
    ).scalar_one_or_none()
    if parent is None:
        return None, []
    children = (
        await sql.scalars(
            select(SyncRun).where(SyncRun.parent_id == parent_id).order_by(SyncRun.id)
        )
    ).all()
    return parent, list(children)


async def get_run(session: UnitOfWork, run_id: str) -> SyncRun | None:
    return await session.get(SyncRun, run_id)


async def queued_run_of(session: UnitOfWork, scope: str, scope_id: str) -> SyncRun | None:
    """The newest run of this scope still waiting for a worker (the one a refused duplicate
    request is pointed at)."""
    return (
        await sql_session(session, WORKERS).scalars(
            select(SyncRun)
            .where(SyncRun.scope == scope, SyncRun.scope_id == scope_id, SyncRun.state == QUEUED)
            .order_by(SyncRun.started_at.desc())
            .limit(1)
        )
    ).first()
