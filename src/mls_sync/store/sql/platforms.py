"""Platform connections (the tokens posts are deleted with), on SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import ConnectionState
from mls_sync.store.models import PlatformConnection


class SqlPlatformConnections:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, user_id: str, platform: str) -> PlatformConnection | None:
        stmt = select(PlatformConnection).where(
            PlatformConnection.user_id == user_id, PlatformConnection.platform == platform
        )
        return (await self._session.execute(stmt)).scalar_one_or_none()

    async def of_user(self, user_id: str) -> Sequence[PlatformConnection]:
        stmt = (
            select(PlatformConnection)
            .where(PlatformConnection.user_id == user_id)
            .order_by(PlatformConnection.platform)
        )
        return (await self._session.execute(stmt)).scalars().all()

    async def due_for_care(self, checked_before: datetime) -> Sequence[PlatformConnection]:
        stmt = (
            select(PlatformConnection)
            .where(
                PlatformConnection.state == ConnectionState.ACTIVE,
                or_(
                    PlatformConnection.tokens_checked_at.is_(None),
                    PlatformConnection.tokens_checked_at <= checked_before,
                ),
            )
            .order_by(PlatformConnection.id)
        )
        return (await self._session.execute(stmt)).scalars().all()

    async def lock(self, connection_id: str) -> PlatformConnection | None:
        # FOR UPDATE on PostgreSQL; SQLite serialises writers anyway.
        stmt = (
            select(PlatformConnection)
            .where(PlatformConnection.id == connection_id)
            .with_for_update()
        )
        return (await self._session.execute(stmt)).scalar_one_or_none()

    async def delete(self, user_id: str, platform: str) -> bool:
        stmt = delete(PlatformConnection).where(
            PlatformConnection.user_id == user_id, PlatformConnection.platform == platform
        )
        result = await self._session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def state_counts(self) -> dict[tuple[str, str], int]:
        stmt = select(PlatformConnection.platform, PlatformConnection.state, func.count()).group_by(
            PlatformConnection.platform, PlatformConnection.state
        )
        counts = await self._session.execute(stmt)
        return {(platform, state): count for platform, state, count in counts}
