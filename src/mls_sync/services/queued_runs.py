"""Syncs run by workers (`MLS_SYNC_EXECUTOR=procrastinate`): queue a run row and its job,
answer with the run's id; later, in a worker, run the job into that row.

Queueing checks ownership with the same answers as the inline mode (another user's id is
`NotFound`). A connection that already has a sync waiting for a worker is not queued twice:
the answer points at the waiting run instead.

Running: a transient error (the connection is held by another process, the database or the
network hiccuped) is raised so the queue retries the job with backoff, and the run stays
open; on the last attempt, or for any other error, the run is finished as failed (so its
parent run still completes) and the error is raised for the queue's record.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

import httpx
import sqlalchemy.exc
import structlog

from mls_sync.domain.errors import USER_NOT_FOUND, NotFound, internal_error
from mls_sync.domain.results import QueuedRun, SyncActionResponse
from mls_sync.services.connections import get_connection
from mls_sync.services.listings import get_listing
from mls_sync.store import deferred_runs
from mls_sync.store.models import SyncRun
from mls_sync.sync import runs
from mls_sync.sync.deferred import DeferConnection, fan_out, settle_parent
from mls_sync.sync.engine import SyncEngine
from mls_sync.sync.guard import SYNC_IN_PROGRESS, SyncInProgressError
from mls_sync.sync.outcome import Outcome

log = structlog.get_logger(__name__)

ALREADY_QUEUED = "A sync of this MLS connection is already queued"

# Worth another attempt later: someone else holds the connection (a live sync elsewhere, or
# the lease of a worker that died and has not lapsed yet), or the database or network failed.
TRANSIENT: tuple[type[Exception], ...] = (
    SyncInProgressError,
    OSError,  # includes ConnectionError and TimeoutError
    httpx.TransportError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)


class Deferrer(Protocol):
    """Puts a job on the queue (executors/procrastinate.py)."""

    async def connection(
        self, connection_id: str, run_id: str, parent_id: str | None, *, trigger: str
    ) -> bool:
        """False when a sync of this connection is already waiting."""
        ...

    async def user(self, user_id: str, run_id: str, *, trigger: str) -> None: ...

    async def everyone(self, run_id: str, *, trigger: str) -> None: ...

    async def listing(self, listing_id: str, run_id: str, *, trigger: str) -> None: ...


def queued(
    run_id: str, message: str = "Sync queued", *, follow: str = "/api/sync-runs"
) -> SyncActionResponse[QueuedRun]:
    """`follow`: where the caller reads the run (a user's runs, or the cron's own)."""
    return SyncActionResponse[QueuedRun](
        success=True, message=f"{message}: GET {follow}/{run_id}", data=QueuedRun(run_id=run_id)
    )


# queueing (the API's process)


async def queue_connection(
    engine: SyncEngine, defer: Deferrer, connection_id: str, *, user_id: str | None, trigger: str
) -> SyncActionResponse[QueuedRun]:
    async with engine.db.transaction() as session:
        connection = await get_connection(session, connection_id, user_id=user_id)
        run = await deferred_runs.queue_run(
            session,
            trigger=trigger,
            scope="connection",
            scope_id=connection.id,
            user_id=connection.user_id,
        )
    if await defer.connection(connection_id, run.id, None, trigger=trigger):
        return queued(run.id)
    # A sync of this connection is already waiting: point at it, and forget our row.
    async with engine.db.transaction() as session:
        ours = await session.get(SyncRun, run.id)
        if ours is not None:
            await session.delete(ours)
        waiting = await deferred_runs.queued_run_of(session, "connection", connection_id)
    if waiting is None:  # it started meanwhile
        raise SyncInProgressError()
    return queued(waiting.id, ALREADY_QUEUED)


async def queue_user(
    engine: SyncEngine, defer: Deferrer, user_id: str, *, trigger: str
) -> SyncActionResponse[QueuedRun]:
    async with engine.db.transaction() as session:
        if await session.users.find(user_id) is None:
            raise NotFound(USER_NOT_FOUND)
        run = await deferred_runs.queue_run(
            session,
            trigger=trigger,
            scope="user",
            scope_id=user_id,
            user_id=user_id,
            connections=0,  # known once the job has listed them
        )
    await defer.user(user_id, run.id, trigger=trigger)
    return queued(run.id)


async def queue_listing(
    engine: SyncEngine, defer: Deferrer, listing_id: str, *, user_id: str | None, trigger: str
) -> SyncActionResponse[QueuedRun]:
    async with engine.db.transaction() as session:
        listing = await get_listing(session, listing_id, user_id=user_id)
        run = await deferred_runs.queue_run(
            session, trigger=trigger, scope="listing", scope_id=listing.id, user_id=listing.user_id
        )
    await defer.listing(listing_id, run.id, trigger=trigger)
    return queued(run.id)


async def queue_everyone(
    engine: SyncEngine, defer: Deferrer, *, trigger: str
) -> SyncActionResponse[QueuedRun]:
    async with engine.db.transaction() as session:
        run = await deferred_runs.queue_run(
            session, trigger=trigger, scope="all", scope_id=None, user_id=None, connections=0
        )
    await defer.everyone(run.id, trigger=trigger)
    return queued(run.id, follow="/api/cron/sync-runs")


# running (a worker's process)


async def run_connection(
    engine: SyncEngine,
    *,
    connection_id: str,
    run_id: str,
    parent_id: str | None,
    trigger: str,
    last_attempt: bool,
) -> None:
    """One connection's job (its own, or a user's run's): its feed's run, the connection's
    part recorded into `run_id`."""
    await _run_child(
        engine,
        runs.sync_connection(engine, connection_id, trigger=trigger, run_id=run_id),
        run_id=run_id,
        parent_id=parent_id,
        last_attempt=last_attempt,
        what={"connection_id": connection_id},
    )


async def run_feed(
    engine: SyncEngine,
    *,
    feed_id: str,
    run_id: str,
    parent_id: str | None,
    trigger: str,
    last_attempt: bool,
    only_if_due: bool = False,
) -> None:
    """One feed's job of a run over everyone: the feed's run recorded into `run_id`.
    `only_if_due` (the schedule's jobs): skipped when the feed ran since it was queued."""
    await _run_child(
        engine,
        runs.sync_feed(engine, feed_id, trigger=trigger, run_id=run_id, only_if_due=only_if_due),
        run_id=run_id,
        parent_id=parent_id,
        last_attempt=last_attempt,
        what={"feed_id": feed_id},
    )


async def _run_child(
    engine: SyncEngine,
    sync: Coroutine[Any, Any, Outcome],
    *,
    run_id: str,
    parent_id: str | None,
    last_attempt: bool,
    what: dict[str, str],
) -> None:
    """Run a queued sync into its row; a sync that cannot run (gone, busy on the last
    attempt, broken) finishes the row itself, so the parent run still completes."""
    failure: Exception | None = None
    skipped = False
    try:
        await sync
        message = None
    except NotFound as exc:  # removed since it was queued
        message = exc.message
    except runs.NotDueError as exc:  # a run of the feed began since it was queued
        message, skipped = exc.message, True
    except SyncInProgressError:
        if not last_attempt:
            raise
        message, skipped = SYNC_IN_PROGRESS, True
    except Exception as exc:
        if isinstance(exc, TRANSIENT) and not last_attempt:
            raise
        log.exception("deferred sync failed", **what)
        message, failure = internal_error(exc), exc
    if message is not None:
        async with engine.db.transaction() as session:
            await deferred_runs.finish_unrun(session, run_id, message=message, skipped=skipped)
    if parent_id is not None:
        await settle_parent(engine.db, parent_id)
    if failure is not None:
        raise failure


async def run_listing(
    engine: SyncEngine, *, listing_id: str, run_id: str, trigger: str, last_attempt: bool
) -> None:
    try:
        await engine.sync_listing(listing_id, trigger=trigger, run_id=run_id)
    except NotFound as exc:
        async with engine.db.transaction() as session:
            await deferred_runs.finish_unrun(session, run_id, message=exc.message)
    except Exception as exc:
        if isinstance(exc, TRANSIENT) and not last_attempt:
            raise
        async with engine.db.transaction() as session:
            await deferred_runs.finish_unrun(session, run_id, message=internal_error(exc))
        raise


async def run_user(
    engine: SyncEngine, *, user_id: str, run_id: str, defer: DeferConnection
) -> None:
    """Every connection of the user (expired ones too: they report that they need
    re-authentication), one job each."""
    async with engine.db.transaction() as session:
        connection_ids = [c.id for c in await session.connections.of_user(user_id)]
    await fan_out(engine.db, run_id, connection_ids, defer)


async def run_everyone(
    engine: SyncEngine,
    *,
    run_id: str | None,
    trigger: str,
    defer: DeferConnection,
    due_only: bool = False,
) -> str:
    """Every active feed once, one job each (`defer` defers a feed's job): a feed's members
    share its run, so the MLS sees one replication per feed whatever the number of agents.
    Without `run_id` (the periodic task) the parent run is created here. Returns the parent
    run's id. `due_only` (the periodic task): only feeds whose cadence has come."""
    async with engine.db.transaction() as session:
        if run_id is None:
            parent = await deferred_runs.queue_run(
                session, trigger=trigger, scope="all", scope_id=None, user_id=None, connections=0
            )
            run_id = parent.id
        feed_ids: Sequence[str] = await runs.due_feeds(session, due_only=due_only)
    log.info("Starting MLS status sync job...", trigger=trigger, feeds=len(feed_ids))
    await fan_out(engine.db, run_id, feed_ids, defer, scope="feed")
    return run_id


async def drain_unpublish(engine: SyncEngine) -> None:
    """Every due unpublish job (those a rate limit or an outage deferred past their run), and
    the platform tokens that must be refreshed before they run out (as `sync_everyone` does
    in single-machine mode)."""
    report = await engine.unpublisher.drain()
    await engine.unpublisher.keep_tokens_alive()
    if report.unpublished or report.errors or report.deferred:
        log.info(
            "unpublish jobs drained",
            unpublished=report.unpublished,
            errors=len(report.errors),
            deferred=report.deferred,
        )
