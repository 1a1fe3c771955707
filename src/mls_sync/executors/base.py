"""What every executor offers: the sync routes' four operations (a leaf: imports no executor).

An executor answers as `services/sync.py` does, raising `NotFound` or `Conflict` for a sync
that cannot start; a deferring one answers `success: true` with a `QueuedRun` as its data.
"""

from __future__ import annotations

from typing import Any, Protocol

from mls_sync.domain.results import QueuedRun, SyncActionResponse

__all__ = ["QueuedRun", "SyncExecutor", "is_queued"]


class SyncExecutor(Protocol):
    async def sync_connection(
        self, connection_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]: ...

    async def sync_user(self, user_id: str, *, trigger: str) -> SyncActionResponse[Any]: ...

    async def sync_listing(
        self, listing_id: str, *, user_id: str | None, trigger: str
    ) -> SyncActionResponse[Any]: ...

    async def sync_everyone(self, *, trigger: str) -> SyncActionResponse[Any]: ...


def is_queued(response: SyncActionResponse[Any]) -> bool:
    return isinstance(response.data, QueuedRun)
