"""The procrastinate executor: queue a run row, defer its job, answer with the run id.

Ownership is checked before anything is queued, with the same answers as the inline mode
(another user's id is "not found"). A connection that already has a sync waiting for a worker
is not queued twice: the answer points at the waiting run instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mls_sync.config import Settings
from mls_sync.domain.results import SyncActionResponse
from mls_sync.executor import QueuedRun
from mls_sync.store import deferred_runs
from mls_sync.store import repositories as repo
from mls_sync.store.database import Database
from mls_sync.store.models import SyncRun
from mls_sync.sync.guard import SYNC_IN_PROGRESS
from mls_sync.worker.app import Deferrer, build_app

ALREADY_QUEUED = "A sync of this MLS connection is already queued"


def queued(
    run_id: str, message: str = "Sync queued", *, follow: str = "/api/sync-runs"
) -> SyncActionResponse[QueuedRun]:
    """`follow`: where the caller reads the run (a user's runs, or the cron's own)."""
    return SyncActionResponse[QueuedRun](
        success=True,
        message=f"{message}: GET {follow}/{run_id}",
        data=QueuedRun(run_id=run_id),
    )


def refused(message: str) -> SyncActionResponse[Any]:
    return SyncActionResponse[Any](success=False, message=message, data=None)


class ProcrastinateExecutor:
    def __init__(self, db: Database, deferrer: Deferrer) -> None:
        self._db = db
        self.deferrer = deferrer

    async def sync_connection(
        self, connection_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]:
        async with self._db.transaction() as session:
            connection = await repo.get_mls_connection(session, connection_id, user_id=user_id)
            if connection is None:
                return refused("MLS connection not found")
            run = await deferred_runs.queue_run(
                session,
                trigger=trigger,
                scope="connection",
                scope_id=connection.id,
                user_id=connection.user_id,
            )
        if await self.deferrer.connection(connection_id, run.id, None, trigger=trigger):
            return queued(run.id)
        # A sync of this connection is already waiting: point at it, and forget our row.
        async with self._db.transaction() as session:
            await session.delete(await session.get(SyncRun, run.id))
            waiting = await deferred_runs.queued_run_of(session, "connection", connection_id)
        if waiting is None:  # it started meanwhile
            return refused(SYNC_IN_PROGRESS)
        return queued(waiting.id, ALREADY_QUEUED)

    async def sync_user(self, user_id: str, *, trigger: str) -> SyncActionResponse[Any]:
        async with self._db.transaction() as session:
            if await repo.find_user(session, user_id) is None:
                return refused("User not found")
            run = await deferred_runs.queue_run(
                session,
                trigger=trigger,
                scope="user",
                scope_id=user_id,
                user_id=user_id,
                connections=0,  # known once the job has listed them
            )
        await self.deferrer.user(user_id, run.id, trigger=trigger)
        return queued(run.id)

    async def sync_listing(
        self, listing_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]:
        async with self._db.transaction() as session:
            listing = await repo.get_listing(session, listing_id, user_id=user_id)
            if listing is None:
                return refused("Listing not found")
            run = await deferred_runs.queue_run(
                session,
                trigger=trigger,
                scope="listing",
                scope_id=listing.id,
                user_id=listing.user_id,
            )
        await self.deferrer.listing(listing_id, run.id, trigger=trigger)
        return queued(run.id)

    async def sync_everyone(self, *, trigger: str) -> SyncActionResponse[Any]:
        async with self._db.transaction() as session:
            run = await deferred_runs.queue_run(
                session, trigger=trigger, scope="all", scope_id=None, user_id=None, connections=0
            )
        await self.deferrer.everyone(run.id, trigger=trigger)
        return queued(run.id, follow="/api/cron/sync-runs")


@asynccontextmanager
async def open_procrastinate(
    settings: Settings, db: Database
) -> AsyncIterator[ProcrastinateExecutor]:
    """The executor on an open procrastinate app (its own psycopg pool), closed on exit."""
    app = build_app(settings)
    async with app.open_async():
        yield ProcrastinateExecutor(db, Deferrer(app))
