"""Who runs a sync that an edge asks for: this process, now (inline, the default), or a worker
(`MLS_SYNC_EXECUTOR=procrastinate`), which answers at once with the run to follow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mls_sync.config import Settings
from mls_sync.executors.base import QueuedRun, SyncExecutor, is_queued
from mls_sync.executors.inline import InlineExecutor
from mls_sync.sync.engine import SyncEngine

__all__ = ["InlineExecutor", "QueuedRun", "SyncExecutor", "is_queued", "open_executor"]


@asynccontextmanager
async def open_executor(settings: Settings, engine: SyncEngine) -> AsyncIterator[SyncExecutor]:
    """The executor `MLS_SYNC_EXECUTOR` names, open until the context exits."""
    if settings.executor != "procrastinate":
        yield InlineExecutor(engine)
        return
    # Imported here: only deployments with workers need procrastinate loaded.
    from mls_sync.executors.procrastinate import open_procrastinate

    async with open_procrastinate(settings, engine) as executor:
        yield executor
