"""MLS connections, on SQL."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import ScalarSelect, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import ConnectionState
from mls_sync.store.models import Listing, MlsConnection
from mls_sync.store.sql.feeds import IDS_A_QUERY, chunks


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

    async def holdings(self, feed_id: str) -> dict[str, int]:
        stmt = (
            select(MlsConnection.id, _held_listings())
            .where(MlsConnection.feed_id == feed_id)
            .order_by(MlsConnection.created_at, MlsConnection.id)
        )
        return {connection_id: count for connection_id, count in await self._session.execute(stmt)}

    async def holdings_of(self, feed_ids: Collection[str]) -> dict[str, dict[str, int]]:
        wanted = sorted(set(feed_ids))
        held: dict[str, dict[str, int]] = {feed_id: {} for feed_id in wanted}
        for part in chunks(wanted, IDS_A_QUERY):
            stmt = (
                select(MlsConnection.feed_id, MlsConnection.id, _held_listings())
                .where(MlsConnection.feed_id.in_(part))
                .order_by(MlsConnection.created_at, MlsConnection.id)
            )
            for feed_id, connection_id, count in await self._session.execute(stmt):
                held[feed_id][connection_id] = count
        return held

    async def with_ids(self, connection_ids: Collection[str]) -> Sequence[MlsConnection]:
        found: list[MlsConnection] = []
        for part in chunks(sorted(set(connection_ids)), IDS_A_QUERY):
            stmt = select(MlsConnection).where(MlsConnection.id.in_(part))
            found.extend((await self._session.execute(stmt)).scalars())
        return found

    async def mark_feed(self, feed_id: str, state: ConnectionState, message: str | None) -> None:
        await self._session.execute(
            update(MlsConnection)
            .where(MlsConnection.feed_id == feed_id)
            .values(state=state, state_message=message)
            .execution_options(synchronize_session="fetch")
        )

    async def delete(self, connection_id: str) -> None:
        # ON DELETE CASCADE removes the listings, their history and posts in the database:
        # the ORM would try to orphan the listings instead.
        await self._session.execute(delete(MlsConnection).where(MlsConnection.id == connection_id))

    async def state_counts(self) -> dict[str, int]:
        stmt = select(MlsConnection.state, func.count()).group_by(MlsConnection.state)
        return {state: count for state, count in await self._session.execute(stmt)}


def _held_listings() -> ScalarSelect[int]:
    """A count per member from the listings' connection index (index-only), rather than a
    GROUP BY over the feed's listings: 1 ms, not 10, for 1,000 members of 20 each."""
    return (
        select(func.count())
        .where(Listing.mls_connection_id == MlsConnection.id)
        .correlate(MlsConnection)
        .scalar_subquery()
    )
