"""What each worker task does, on a runtime: thin calls into the same engine functions the
inline mode runs, plus the bookkeeping of the run rows that callers were answered with.

Failure rules: a transient error (the connection is held by another process, the database or
the network hiccuped) is raised so procrastinate retries the job with backoff, and the run
stays open; on the last attempt, or for any other error, the run is finished as failed (so its
parent run still completes) and the error is raised for procrastinate's record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx
import sqlalchemy.exc
import structlog

from mls_sync.store import deferred_runs
from mls_sync.store import repositories as repo
from mls_sync.sync import runs
from mls_sync.sync.deferred import DeferConnection, fan_out, settle_parent
from mls_sync.sync.guard import SYNC_IN_PROGRESS, SyncInProgressError
from mls_sync.sync.outcome import NotFoundError

if TYPE_CHECKING:
    from mls_sync.runtime import Runtime

log = structlog.get_logger(__name__)

# Worth another attempt later: someone else holds the connection (a live sync elsewhere, or
# the lease of a worker that died and has not lapsed yet), or the database or network failed.
TRANSIENT: tuple[type[Exception], ...] = (
    SyncInProgressError,
    OSError,  # includes ConnectionError and TimeoutError
    httpx.TransportError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


async def sync_connection(
    runtime: Runtime,
    *,
    connection_id: str,
    run_id: str,
    parent_id: str | None,
    trigger: str,
    last_attempt: bool,
) -> None:
    failure: Exception | None = None
    skipped = False
    try:
        await runs.sync_connection(runtime.engine, connection_id, trigger=trigger, run_id=run_id)
        message = None
    except NotFoundError as exc:  # removed since it was queued
        message = str(exc)
    except SyncInProgressError:
        if not last_attempt:
            raise
        message, skipped = SYNC_IN_PROGRESS, True
    except Exception as exc:
        if isinstance(exc, TRANSIENT) and not last_attempt:
            raise
        log.exception("deferred connection sync failed", connection_id=connection_id)
        message, failure = f"Internal error: {type(exc).__name__}", exc
    if message is not None:
        async with runtime.db.transaction() as session:
            await deferred_runs.finish_unrun(session, run_id, message=message, skipped=skipped)
    if parent_id is not None:
        await settle_parent(runtime.db, parent_id)
    if failure is not None:
        raise failure


async def sync_listing(
    runtime: Runtime, *, listing_id: str, run_id: str, trigger: str, last_attempt: bool
) -> None:
    try:
        await runtime.engine.sync_listing(listing_id, trigger=trigger, run_id=run_id)
    except NotFoundError as exc:
        async with runtime.db.transaction() as session:
            await deferred_runs.finish_unrun(session, run_id, message=str(exc))
    except Exception as exc:
        if isinstance(exc, TRANSIENT) and not last_attempt:
            raise
        async with runtime.db.transaction() as session:
            await deferred_runs.finish_unrun(
                session, run_id, message=f"Internal error: {type(exc).__name__}"
            )
        raise


async def sync_user(runtime: Runtime, *, user_id: str, run_id: str, defer: DeferConnection) -> None:
    """Every connection of the user (expired ones too: they report that they need
    re-authentication), one job each."""
    async with runtime.db.transaction() as session:
        connection_ids = [c.id for c in await repo.user_connections(session, user_id)]
    await fan_out(runtime.db, run_id, connection_ids, defer)


async def sync_everyone(
    runtime: Runtime, *, run_id: str | None, trigger: str, defer: DeferConnection
) -> str:
    """Every active connection of every user, one job each; without `run_id` (the periodic
    task) the parent run is created here. Returns the parent run's id."""
    async with runtime.db.transaction() as session:
        if run_id is None:
            parent = await deferred_runs.queue_run(
                session, trigger=trigger, scope="all", scope_id=None, user_id=None, connections=0
            )
            run_id = parent.id
        connection_ids: Sequence[str] = await repo.active_connection_ids(session)
    log.info("Starting MLS status sync job...", trigger=trigger, connections=len(connection_ids))
    await fan_out(runtime.db, run_id, connection_ids, defer)
    return run_id


async def drain_unpublish(runtime: Runtime) -> None:
    """Every due unpublish job (those a rate limit or an outage deferred past their run), and
    the platform tokens that must be refreshed before they run out (as `sync_everyone` does
    in single-machine mode)."""
    report = await runtime.engine.unpublisher.drain()
    await runtime.engine.unpublisher.keep_tokens_alive()
    if report.unpublished or report.errors or report.deferred:
        log.info(
            "unpublish jobs drained",
            unpublished=report.unpublished,
            errors=len(report.errors),
            deferred=report.deferred,
        )
