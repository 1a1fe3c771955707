"""MLS connections, on SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import ConnectionState
from mls_sync.store.models import MlsConnection


class SqlMlsConnections:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def of_user(self, user_id: str) -> Sequence[MlsConnection]:
        stmt = (
            select(MlsConnection)
            .where(MlsConnection.user_id == user_id)
            .order_by(MlsConnection.created_at, MlsConnection.id)
        )
        return (await self._session.execute(stmt)).scalars().all()

    async def of_feed(self, feed_id: str) -> Sequence[MlsConnection]:
        stmt = (
            select(MlsConnection)
            .where(MlsConnection.feed_id == feed_id)
            .order_by(MlsConnection.created_at, MlsConnection.id)
        )
        return (await self._session.execute(stmt)).scalars().all()

    async def mark_feed(self, feed_id: str, state: ConnectionState, message: str | None) -> None:
        await self._session.execute(
            update(MlsConnection)
            .where(MlsConnection.feed_id == feed_id)
            .values(state=state, state_message=message)
            .execution_options(synchronize_session="fetch")
        )

    async def touch_feed(self, feed_id: str, at: datetime) -> None:
        await self._session.execute(
            update(MlsConnection)
            .where(MlsConnection.feed_id == feed_id)
            .values(last_sync_at=at)
            .execution_options(synchronize_session="fetch")
        )

    async def delete(self, connection_id: str) -> None:
        # ON DELETE CASCADE removes the listings, their history and posts in the database:
        # the ORM would try to orphan the listings instead.
        await self._session.execute(delete(MlsConnection).where(MlsConnection.id == connection_id))

    async def state_counts(self) -> dict[str, int]:
        stmt = select(MlsConnection.state, func.count()).group_by(MlsConnection.state)
        return {state: count for state, count in await self._session.execute(stmt)}
