"""Published posts, on SQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.store.models import Listing, Post


class SqlPosts:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def of_listing(self, listing_id: str) -> Sequence[Post]:
        stmt = select(Post).where(Post.listing_id == listing_id).order_by(Post.created_at, Post.id)
        return (await self._session.execute(stmt)).scalars().all()

    async def of_user(
        self, user_id: str, *, listing_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[Post]:
        stmt = (
            select(Post)
            .join(Listing, Listing.id == Post.listing_id)
            .where(Listing.user_id == user_id)
        )
        if listing_id is not None:
            stmt = stmt.where(Post.listing_id == listing_id)
        stmt = stmt.order_by(Post.created_at, Post.id).limit(limit).offset(offset)
        return (await self._session.execute(stmt)).scalars().all()
