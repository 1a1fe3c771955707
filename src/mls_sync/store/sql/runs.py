"""Sync runs (the run history), on SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.store.models import SyncRun


class SqlRuns:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def newest(
        self, *, user_id: str | None, limit: int = 50, before: datetime | None = None
    ) -> list[SyncRun]:
        stmt = select(SyncRun).order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit)
        if user_id is not None:
            stmt = stmt.where(SyncRun.user_id == user_id)
        if before is not None:
            stmt = stmt.where(SyncRun.started_at < before)
        return list((await self._session.scalars(stmt)).all())

    async def finish(self, run_id: str, values: dict[str, Any]) -> None:
        # "evaluate": a run row this unit of work holds (one it started) takes the values in
        # Python too, without the SELECT that a `session.get` of a row from another one costs.
        await self._session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(**values)
            .execution_options(synchronize_session="evaluate")
        )
