"""The unpublish outbox, on SQL."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import PostStatus
from mls_sync.store.models import Listing, Post, UnpublishJob


class SqlOutbox:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def enqueue(self, listing_id: str) -> int:
        queued = select(UnpublishJob.post_id)
        stmt = select(Post.id).where(
            Post.listing_id == listing_id,
            Post.status == PostStatus.PUBLISHED,
            Post.id.not_in(queued),
        )
        post_ids = (await self._session.execute(stmt)).scalars().all()
        self._session.add_all(UnpublishJob(post_id=post_id) for post_id in post_ids)
        return len(post_ids)

    async def due(
        self, *, now: datetime, listing_ids: Collection[str] | None = None
    ) -> Sequence[tuple[UnpublishJob, Post, Listing]]:
        stmt = (
            select(UnpublishJob, Post, Listing)
            .join(Post, Post.id == UnpublishJob.post_id)
            .join(Listing, Listing.id == Post.listing_id)
            .where(UnpublishJob.next_attempt_at <= now)
            .order_by(UnpublishJob.next_attempt_at, UnpublishJob.id)
        )
        if listing_ids is not None:
            stmt = stmt.where(Listing.id.in_(list(listing_ids)))
        rows = await self._session.execute(stmt)
        return [(job, post, listing) for job, post, listing in rows]

    async def claim(
        self, job_id: str, *, now: datetime, until: datetime, by: str | None = None
    ) -> bool:
        # UPDATE ... WHERE still due: of two drains, exactly one sees its row change.
        stmt = (
            update(UnpublishJob)
            .where(UnpublishJob.id == job_id, UnpublishJob.next_attempt_at <= now)
            .values(next_attempt_at=until, claimed_by=by)
            .execution_options(synchronize_session=False)
        )
        result = await self._session.execute(stmt)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def release_claims(self, by: str, *, now: datetime) -> int:
        stmt = (
            update(UnpublishJob)
            .where(UnpublishJob.claimed_by == by)
            .values(next_attempt_at=now, claimed_by=None)
            .execution_options(synchronize_session=False)
        )
        result = await self._session.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    async def depth(self) -> tuple[int, datetime | None]:
        stmt = select(func.count(), func.min(UnpublishJob.created_at))
        count, oldest = (await self._session.execute(stmt)).one()
        return count, oldest
