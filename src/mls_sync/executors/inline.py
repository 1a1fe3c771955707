"""Runs the sync here and answers when it is done (SQLite, `make demo`, one machine)."""

from __future__ import annotations

from typing import Any

from mls_sync.domain.results import SyncActionResponse
from mls_sync.services import sync
from mls_sync.sync.engine import SyncEngine


class InlineExecutor:
    def __init__(self, engine: SyncEngine) -> None:
        self._engine = engine

    async def sync_connection(
        self, connection_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]:
        return await sync.sync_connection(
            self._engine, connection_id, user_id=user_id, trigger=trigger
        )

    async def sync_user(self, user_id: str, *, trigger: str) -> SyncActionResponse[Any]:
        return await sync.sync_user(self._engine, user_id, trigger=trigger)

    async def sync_listing(
        self, listing_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]:
        return await sync.sync_listing(self._engine, listing_id, user_id=user_id, trigger=trigger)

    async def sync_everyone(self, *, trigger: str) -> SyncActionResponse[Any]:
        return await sync.sync_everyone(self._engine, trigger=trigger)
