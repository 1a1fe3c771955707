"""Queries, as small functions over an `AsyncSession`. They never commit: the caller owns the
unit of work (`Database.transaction()`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import ConnectionState, ListingStatus, PostStatus
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.models import (
    Listing,
    ListingStatusHistory,
    MlsConnection,
    PlatformConnection,
    Post,
    SyncRun,
    UnpublishJob,
    User,
)
from mls_sync.store.types import utcnow

# users


async def create_user(session: AsyncSession, email: str) -> User:
    user = User(email=email.strip().lower())
    session.add(user)
    await session.flush()
    return user


async def find_user(session: AsyncSession, id_or_email: str) -> User | None:
    if "@" in id_or_email:
        stmt = select(User).where(User.email == id_or_email.strip().lower())
        return (await session.execute(stmt)).scalar_one_or_none()
    return await session.get(User, id_or_email)


# MLS connections


async def create_mls_connection(
    session: AsyncSession,
    cipher: TokenCipher,
    *,
    user_id: str,
    base_url: str,
    token: str,
    name: str = "",
    provider: str = "generic",
    key_field: str = "ListingKey",
    filter_style: str = "in",
) -> MlsConnection:
    connection = MlsConnection(
        user_id=user_id,
        base_url=base_url.rstrip("/"),
        credentials_encrypted=cipher.encrypt(token),
        name=name,
        provider=provider,
        key_field=key_field,
        filter_style=filter_style,
        status_overrides={},
        bookmark_keys=[],
    )
    session.add(connection)
    await session.flush()
    return connection


async def get_mls_connection(
    session: AsyncSession, connection_id: str, *, user_id: str | None = None
) -> MlsConnection | None:
    """The connection, or None when it does not exist or belongs to another user (the two are
    indistinguishable on purpose)."""
    connection = await session.get(MlsConnection, connection_id)
    if connection is None or (user_id is not None and connection.user_id != user_id):
        return None
    return connection


async def user_connections(session: AsyncSession, user_id: str) -> Sequence[MlsConnection]:
    stmt = (
        select(MlsConnection)
        .where(MlsConnection.user_id == user_id)
        .order_by(MlsConnection.created_at, MlsConnection.id)
    )
    return (await session.execute(stmt)).scalars().all()


async def mark_connection(
    session: AsyncSession, connection_id: str, state: ConnectionState, message: str | None
) -> None:
    connection = await session.get(MlsConnection, connection_id)
    if connection is not None:
        connection.state = state
        connection.state_message = message


# listings


async def add_listing(
    session: AsyncSession,
    *,
    connection: MlsConnection,
    listing_key: str,
    mls_number: str,
    status: ListingStatus = ListingStatus.ACTIVE,
) -> Listing:
    listing = Listing(
        user_id=connection.user_id,
        mls_connection_id=connection.id,
        listing_key=listing_key,
        mls_number=mls_number,
        status=status,
    )
    session.add(listing)
    await session.flush()
    return listing


async def get_listing(
    session: AsyncSession, listing_id: str, *, user_id: str | None = None
) -> Listing | None:
    listing = await session.get(Listing, listing_id)
    if listing is None or (user_id is not None and listing.user_id != user_id):
        return None
    return listing


async def connection_listings(session: AsyncSession, connection_id: str) -> Sequence[Listing]:
    stmt = (
        select(Listing)
        .where(Listing.mls_connection_id == connection_id)
        .order_by(Listing.listing_key)
    )
    return (await session.execute(stmt)).scalars().all()


async def lock_listing(session: AsyncSession, listing_id: str) -> Listing | None:
    """The listing row, locked until the transaction ends (PostgreSQL; SQLite serialises
    writers anyway)."""
    stmt = select(Listing).where(Listing.id == listing_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def record_status_change(
    session: AsyncSession,
    listing: Listing,
    new_status: ListingStatus,
    *,
    mls_modified_at: datetime | None,
    sync_run_id: str | None,
) -> None:
    session.add(
        ListingStatusHistory(
            listing_id=listing.id,
            old_status=listing.status,
            new_status=new_status,
            sync_run_id=sync_run_id,
        )
    )
    listing.status = new_status
    if mls_modified_at is not None:
        listing.mls_modified_at = mls_modified_at


async def status_history(session: AsyncSession, listing_id: str) -> Sequence[ListingStatusHistory]:
    stmt = (
        select(ListingStatusHistory)
        .where(ListingStatusHistory.listing_id == listing_id)
        .order_by(ListingStatusHistory.id)
    )
    return (await session.execute(stmt)).scalars().all()


# platform connections and posts


async def upsert_platform_connection(
    session: AsyncSession,
    cipher: TokenCipher,
    *,
    user_id: str,
    platform: str,
    access_token: str,
    refresh_token: str | None = None,
    expires_at: datetime | None = None,
) -> PlatformConnection:
    stmt = select(PlatformConnection).where(
        PlatformConnection.user_id == user_id, PlatformConnection.platform == platform
    )
    connection = (await session.execute(stmt)).scalar_one_or_none()
    if connection is None:
        connection = PlatformConnection(user_id=user_id, platform=platform)
        session.add(connection)
    connection.access_token_encrypted = cipher.encrypt(access_token)
    connection.refresh_token_encrypted = cipher.encrypt(refresh_token) if refresh_token else None
    connection.expires_at = expires_at
    connection.state = ConnectionState.ACTIVE
    connection.state_message = None
    await session.flush()
    return connection


async def platform_connection(
    session: AsyncSession, user_id: str, platform: str
) -> PlatformConnection | None:
    stmt = select(PlatformConnection).where(
        PlatformConnection.user_id == user_id, PlatformConnection.platform == platform
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_post(
    session: AsyncSession, *, listing: Listing, platform: str, platform_post_id: str
) -> Post:
    post = Post(listing_id=listing.id, platform=platform, platform_post_id=platform_post_id)
    session.add(post)
    await session.flush()
    return post


async def listing_posts(session: AsyncSession, listing_id: str) -> Sequence[Post]:
    stmt = select(Post).where(Post.listing_id == listing_id).order_by(Post.created_at, Post.id)
    return (await session.execute(stmt)).scalars().all()


# the unpublish outbox


async def enqueue_unpublish_jobs(session: AsyncSession, listing_id: str) -> int:
    """One job per published post of the listing that has none yet; returns how many."""
    queued = select(UnpublishJob.post_id)
    stmt = select(Post.id).where(
        Post.listing_id == listing_id,
        Post.status == PostStatus.PUBLISHED,
        Post.id.not_in(queued),
    )
    post_ids = (await session.execute(stmt)).scalars().all()
    session.add_all(UnpublishJob(post_id=post_id) for post_id in post_ids)
    return len(post_ids)


async def due_unpublish_jobs(
    session: AsyncSession, *, now: datetime, listing_ids: Collection[str] | None = None
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
    return [(job, post, listing) for job, post, listing in await session.execute(stmt)]


# sync runs


async def start_run(
    session: AsyncSession, *, trigger: str, scope: str, scope_id: str | None, user_id: str | None
) -> SyncRun:
    run = SyncRun(
        trigger=trigger, scope=scope, scope_id=scope_id, user_id=user_id, totals={}, errors=[]
    )
    session.add(run)
    await session.flush()
    return run


async def finish_run(
    session: AsyncSession,
    run_id: str,
    *,
    success: bool,
    message: str,
    totals: dict,
    errors: list,
) -> None:
    run = await session.get(SyncRun, run_id)
    if run is None:
        return
    run.finished_at = utcnow()
    run.success = success
    run.message = message
    run.totals = totals
    run.errors = errors
