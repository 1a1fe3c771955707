"""Who runs a sync that the API asks for: this process, now (inline, the default), or a worker
(`MLS_SYNC_EXECUTOR=procrastinate`), which answers at once with the run to follow.

Both speak the product's `{success, message, data}`; a deferred answer's `data` is a
`QueuedRun` (the id of the `sync_runs` row, shown by `GET /api/sync-runs/{id}`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from mls_sync import actions
from mls_sync.config import Settings
from mls_sync.domain.results import SyncActionResponse, WireModel
from mls_sync.store.database import Database
from mls_sync.sync.engine import SyncEngine


class QueuedRun(WireModel):
    run_id: str
    state: str = "queued"


class SyncExecutor(Protocol):
    """The sync routes' operations. Answers as `actions` does, or, when deferred, with
    `success: true` and a QueuedRun."""

    async def sync_connection(
        self, connection_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]: ...

    async def sync_user(self, user_id: str, *, trigger: str) -> SyncActionResponse[Any]: ...

    async def sync_listing(
        self, listing_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]: ...

    async def sync_everyone(self, *, trigger: str) -> SyncActionResponse[Any]: ...


class InlineExecutor:
    """Runs the sync here and answers when it is done (SQLite, `make demo`, one machine)."""

    def __init__(self, engine: SyncEngine) -> None:
        self._engine = engine

    async def sync_connection(
        self, connection_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]:
        return await actions.sync_mls_status(
            connection_id, engine=self._engine, user_id=user_id, trigger=trigger
        )

    async def sync_user(self, user_id: str, *, trigger: str) -> SyncActionResponse[Any]:
        return await actions.sync_all_mls_connections(user_id, engine=self._engine, trigger=trigger)

    async def sync_listing(
        self, listing_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]:
        return await actions.sync_listing_status(
            listing_id, engine=self._engine, user_id=user_id, trigger=trigger
        )

    async def sync_everyone(self, *, trigger: str) -> SyncActionResponse[Any]:
        return await actions.sync_all_users(engine=self._engine, trigger=trigger)


def is_queued(response: SyncActionResponse[Any]) -> bool:
    return isinstance(response.data, QueuedRun)


@asynccontextmanager
async def open_executor(
    settings: Settings, db: Database, engine: SyncEngine
) -> AsyncIterator[SyncExecutor]:
    """The executor `MLS_SYNC_EXECUTOR` names, open until the context exits."""
    if settings.executor != "procrastinate":
        yield InlineExecutor(engine)
        return
    # Imported here: only deployments with workers need procrastinate loaded.
    from mls_sync.worker.executor import open_procrastinate

    async with open_procrastinate(settings, db) as executor:
        yield executor
