"""What the dashboard page reads that no repository answers: joins over one user's rows, on
SQL only (the page refuses DynamoDB). services/dashboard.py turns them into the page's rows."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import ConnectionState
from mls_sync.store.models import (
    Listing,
    ListingStatusHistory,
    PlatformConnection,
    Post,
    UnpublishJob,
)


async def platforms_to_reconnect(
    session: AsyncSession, user_id: str, *, states: Collection[ConnectionState]
) -> Sequence[PlatformConnection]:
    """The user's platform connections in `states`, and those the token care warned about."""
    stmt = (
        select(PlatformConnection)
        .where(PlatformConnection.user_id == user_id)
        .where(
            or_(
                PlatformConnection.state.in_(list(states)),
                PlatformConnection.expiry_warned_at.is_not(None),
            )
        )
        .order_by(PlatformConnection.platform)
    )
    return (await session.scalars(stmt)).all()


async def status_changes(
    session: AsyncSession, user_id: str, *, limit: int
) -> list[tuple[ListingStatusHistory, str, str]]:
    """The user's latest status changes, newest first, with the listing's MLS number and key."""
    stmt = (
        select(ListingStatusHistory, Listing.mls_number, Listing.listing_key)
        .join(Listing, Listing.id == ListingStatusHistory.listing_id)
        .where(Listing.user_id == user_id)
        .order_by(ListingStatusHistory.at.desc(), ListingStatusHistory.id.desc())
        .limit(limit)
    )
    rows = await session.execute(stmt)
    return [(change, mls_number, key) for change, mls_number, key in rows]


async def stuck_jobs(
    session: AsyncSession, user_id: str, *, due_before: datetime, limit: int
) -> list[tuple[UnpublishJob, str, str, str]]:
    """The user's outbox jobs that failed at least once or were due before `due_before`, with
    the post's platform and id and the listing's MLS number, oldest first."""
    stmt = (
        select(UnpublishJob, Post.platform, Post.platform_post_id, Listing.mls_number)
        .join(Post, Post.id == UnpublishJob.post_id)
        .join(Listing, Listing.id == Post.listing_id)
        .where(Listing.user_id == user_id)
        .where(or_(UnpublishJob.attempts > 0, UnpublishJob.next_attempt_at < due_before))
        .order_by(UnpublishJob.created_at, UnpublishJob.id)
        .limit(limit)
    )
    rows = await session.execute(stmt)
    return [(job, platform, post_id, mls_number) for job, platform, post_id, mls_number in rows]
