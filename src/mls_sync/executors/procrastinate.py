"""Defers each sync to the workers (`MLS_SYNC_EXECUTOR=procrastinate`) and answers at once
with the run to follow (services/queued_runs.py does the queueing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mls_sync.config import Settings
from mls_sync.domain.results import SyncActionResponse
from mls_sync.services import queued_runs
from mls_sync.sync.engine import SyncEngine
from mls_sync.worker.app import Deferrer, build_app


class ProcrastinateExecutor:
    def __init__(self, engine: SyncEngine, deferrer: Deferrer) -> None:
        self._engine = engine
        self.deferrer = deferrer

    async def sync_connection(
        self, connection_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]:
        return await queued_runs.queue_connection(
            self._engine, self.deferrer, connection_id, user_id=user_id, trigger=trigger
        )

    async def sync_user(self, user_id: str, *, trigger: str) -> SyncActionResponse[Any]:
        return await queued_runs.queue_user(self._engine, self.deferrer, user_id, trigger=trigger)

    async def sync_listing(
        self, listing_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]:
        return await queued_runs.queue_listing(
            self._engine, self.deferrer, listing_id, user_id=user_id, trigger=trigger
        )

    async def sync_everyone(self, *, trigger: str) -> SyncActionResponse[Any]:
        return await queued_runs.queue_everyone(self._engine, self.deferrer, trigger=trigger)


@asynccontextmanager
async def open_procrastinate(
    settings: Settings, engine: SyncEngine
) -> AsyncIterator[ProcrastinateExecutor]:
    """The executor on an open procrastinate app (its own psycopg pool), closed on exit."""
    app = build_app(settings)
    async with app.open_async():
        yield ProcrastinateExecutor(engine, Deferrer(app))
