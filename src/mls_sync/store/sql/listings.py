"""Listings and their status history, on SQL."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import ListingStatus
from mls_sync.store.models import Listing, ListingStatusHistory
from mls_sync.store.sql.feeds import IDS_A_QUERY, chunks


class SqlListings:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def of_connection(self, connection_id: str) -> Sequence[Listing]:
        stmt = (
            select(Listing)
            .where(Listing.mls_connection_id == connection_id)
            .order_by(Listing.listing_key)
        )
        return (await self._session.execute(stmt)).scalars().all()

    async def by_key(self, connection_id: str, listing_key: str) -> Listing | None:
        stmt = select(Listing).where(
            Listing.mls_connection_id == connection_id, Listing.listing_key == listing_key
        )
        return (await self._session.execute(stmt)).scalar_one_or_none()

    async def held_in_feed(self, feed_id: str, keys: Collection[str]) -> Sequence[Listing]:
        held: list[Listing] = []
        ordered = sorted(set(keys))
        for i in range(0, len(ordered), 500):  # well under every database's bound-value limit
            stmt = select(Listing).where(
                Listing.feed_id == feed_id, Listing.listing_key.in_(ordered[i : i + 500])
            )
            held.extend((await self._session.execute(stmt)).scalars())
        return held

    async def of_feed(self, feed_id: str) -> Sequence[Listing]:
        stmt = select(Listing).where(Listing.feed_id == feed_id).order_by(Listing.listing_key)
        return (await self._session.execute(stmt)).scalars().all()

    async def lock(self, listing_id: str) -> Listing | None:
        # FOR UPDATE on PostgreSQL; SQLite serialises writers anyway.
        stmt = select(Listing).where(Listing.id == listing_id).with_for_update()
        return (await self._session.execute(stmt)).scalar_one_or_none()

    async def lock_many(self, listing_ids: Collection[str]) -> dict[str, Listing]:
        locked: dict[str, Listing] = {}
        for part in chunks(sorted(set(listing_ids)), IDS_A_QUERY):
            stmt = (
                select(Listing).where(Listing.id.in_(part)).order_by(Listing.id).with_for_update()
            )
            locked.update((li.id, li) for li in (await self._session.execute(stmt)).scalars())
        return locked

    async def history(self, listing_id: str) -> Sequence[ListingStatusHistory]:
        stmt = (
            select(ListingStatusHistory)
            .where(ListingStatusHistory.listing_id == listing_id)
            .order_by(ListingStatusHistory.id)
        )
        return (await self._session.execute(stmt)).scalars().all()

    async def of_user(
        self,
        user_id: str,
        *,
        connection_id: str | None = None,
        status: ListingStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[Listing]:
        stmt = select(Listing).where(Listing.user_id == user_id)
        if connection_id is not None:
            stmt = stmt.where(Listing.mls_connection_id == connection_id)
        if status is not None:
            stmt = stmt.where(Listing.status == status)
        stmt = stmt.order_by(Listing.created_at, Listing.id).limit(limit).offset(offset)
        return (await self._session.execute(stmt)).scalars().all()
