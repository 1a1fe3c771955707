"""Sync runs (the run history), on SQL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
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
