"""Queries, as small functions over an `AsyncSession`. They never commit: the caller owns the
unit of work (`Database.transaction()`).

The functions marked `@singledispatch` dispatch on the session's type: the bodies here serve
SQLAlchemy, and `store/dynamo/repositories.py` registers their twins for `DynamoSession`; the
others only use what both sessions offer (`get`, `add`, `flush`, attribute changes)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from functools import singledispatch
from typing import Any

from sqlalchemy import delete, func, or_, select, update
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


@singledispatch
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
    token: str | None = None,
    name: str = "",
    provider: str = "generic",
    key_field: str = "ListingKey",
    filter_style: str = "in",
    auth_kind: str = "bearer",
    credentials: dict[str, Any] | None = None,
    profile_overrides: dict[str, Any] | None = None,
) -> MlsConnection:
    """`token` for a static bearer token; `credentials` (e.g. client_id and client_secret for
    OAuth2) are stored as one encrypted JSON object."""
    if (token is None) == (credentials is None):
        raise ValueError("give either a token or credentials")
    secret = token if token is not None else json.dumps(credentials, sort_keys=True)
    connection = MlsConnection(
        user_id=user_id,
        base_url=base_url.rstrip("/"),
        credentials_encrypted=cipher.encrypt(secret),
        name=name,
        provider=provider,
        auth_kind=auth_kind,
        key_field=key_field,
        filter_style=filter_style,
        status_overrides={},
        bookmark_keys=[],
        profile_overrides=profile_overrides or {},
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


@singledispatch
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


@singledispatch
async def connection_listings(session: AsyncSession, connection_id: str) -> Sequence[Listing]:
    stmt = (
        select(Listing)
        .where(Listing.mls_connection_id == connection_id)
        .order_by(Listing.listing_key)
    )
    return (await session.execute(stmt)).scalars().all()


@singledispatch
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


@singledispatch
async def status_history(session: AsyncSession, listing_id: str) -> Sequence[ListingStatusHistory]:
    stmt = (
        select(ListingStatusHistory)
        .where(ListingStatusHistory.listing_id == listing_id)
        .order_by(ListingStatusHistory.id)
    )
    return (await session.execute(stmt)).scalars().all()


# platform connections and posts


@singledispatch
async def upsert_platform_connection(
    session: AsyncSession,
    cipher: TokenCipher,
    *,
    user_id: str,
    platform: str,
    access_token: str,
    refresh_token: str | None = None,
    expires_at: datetime | None = None,
    login: str | None = None,
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
    connection.login = login
    connection.state = ConnectionState.ACTIVE
    connection.state_message = None
    connection.tokens_checked_at = None
    connection.expiry_warned_at = None
    await session.flush()
    return connection


@singledispatch
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


@singledispatch
async def listing_posts(session: AsyncSession, listing_id: str) -> Sequence[Post]:
    stmt = select(Post).where(Post.listing_id == listing_id).order_by(Post.created_at, Post.id)
    return (await session.execute(stmt)).scalars().all()


# the unpublish outbox


@singledispatch
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


@singledispatch
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
    status_changes: list | None = None,
) -> None:
    run = await session.get(SyncRun, run_id)
    if run is None:
        return
    run.finished_at = utcnow()
    run.state = "finished"
    run.success = success
    run.message = message
    run.totals = totals
    run.errors = errors
    run.status_changes = status_changes or []
    run.state = "finished"


@singledispatch
async def list_runs(
    session: AsyncSession,
    *,
    user_id: str | None,
    limit: int = 50,
    before: datetime | None = None,
) -> list[SyncRun]:
    """Newest first; `user_id=None` lists every user's runs (and system runs), `before` pages
    on `started_at`."""
    stmt = select(SyncRun).order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit)
    if user_id is not None:
        stmt = stmt.where(SyncRun.user_id == user_id)
    if before is not None:
        stmt = stmt.where(SyncRun.started_at < before)
    return list((await session.scalars(stmt)).all())


async def get_run(session: AsyncSession, run_id: str, *, user_id: str | None) -> SyncRun | None:
    """Another user's run answers None, exactly like a run that does not exist."""
    run = await session.get(SyncRun, run_id)
    if run is None or (user_id is not None and run.user_id != user_id):
        return None
    return run


# monitoring (read at metrics scrape time)


@singledispatch
async def mls_connection_state_counts(session: AsyncSession) -> dict[str, int]:
    stmt = select(MlsConnection.state, func.count()).group_by(MlsConnection.state)
    return {state: count for state, count in await session.execute(stmt)}


@singledispatch
async def platform_connection_state_counts(session: AsyncSession) -> dict[tuple[str, str], int]:
    stmt = select(PlatformConnection.platform, PlatformConnection.state, func.count()).group_by(
        PlatformConnection.platform, PlatformConnection.state
    )
    return {(platform, state): count for platform, state, count in await session.execute(stmt)}


@singledispatch
async def outbox_depth(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many unpublish jobs wait, and when the oldest was queued."""
    stmt = select(func.count(), func.min(UnpublishJob.created_at))
    count, oldest = (await session.execute(stmt)).one()
    return count, oldest


# platform tokens and outbox claims (the unpublish drain)


@singledispatch
async def lock_platform_connection(
    session: AsyncSession, connection_id: str
) -> PlatformConnection | None:
    """The platform connection row, locked until the transaction ends (PostgreSQL; SQLite
    serialises writers anyway): whoever holds it is the only one refreshing its tokens."""
    stmt = (
        select(PlatformConnection).where(PlatformConnection.id == connection_id).with_for_update()
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def store_platform_tokens(
    connection: PlatformConnection,
    cipher: TokenCipher,
    *,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> None:
    """Replace the connection's tokens (encrypted) after a refresh; a None refresh token keeps
    the stored one, since not every platform sends it back."""
    connection.access_token_encrypted = cipher.encrypt(access_token)
    if refresh_token:
        connection.refresh_token_encrypted = cipher.encrypt(refresh_token)
    connection.expires_at = expires_at
    connection.state = ConnectionState.ACTIVE
    connection.state_message = None
    connection.expiry_warned_at = None  # a new expiry is announced afresh


@singledispatch
async def claim_unpublish_job(
    session: AsyncSession, job_id: str, *, now: datetime, until: datetime
) -> bool:
    """Take a due job for this worker until `until` (a lease). False when it is no longer due:
    another drain claimed it first, and only one of them may call the platform."""
    stmt = (
        update(UnpublishJob)
        .where(UnpublishJob.id == job_id, UnpublishJob.next_attempt_at <= now)
        .values(next_attempt_at=until)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0) == 1)


# MLS replication state


async def save_bookmark(
    session: AsyncSession, connection_id: str, timestamp: datetime | None, keys: Sequence[str]
) -> None:
    """The replication bookmark; written in the transaction that commits the changes it
    covers, never before."""
    connection = await session.get(MlsConnection, connection_id)
    if connection is not None:
        connection.bookmark_timestamp = timestamp
        connection.bookmark_keys = list(keys)


async def finish_full_check(
    session: AsyncSession,
    connection_id: str,
    *,
    at: datetime,
    bookmark: datetime | None,
    entity_event_sequence: int | None = None,
) -> None:
    connection = await session.get(MlsConnection, connection_id)
    if connection is not None:
        connection.last_full_check_at = at
        if entity_event_sequence is not None:
            _advance_sequence(connection, entity_event_sequence)
        if bookmark is not None and (
            connection.bookmark_timestamp is None or bookmark > connection.bookmark_timestamp
        ):
            connection.bookmark_timestamp = bookmark
            connection.bookmark_keys = []


async def save_entity_event_sequence(
    session: AsyncSession, connection_id: str, sequence: int
) -> None:
    """The last EntityEventSequence applied; written in the transaction that commits the
    changes it covers, and never moved backwards."""
    connection = await session.get(MlsConnection, connection_id)
    if connection is not None:
        _advance_sequence(connection, sequence)


def _advance_sequence(connection: MlsConnection, sequence: int) -> None:
    current = connection.entity_event_sequence
    if current is None or sequence > current:
        connection.entity_event_sequence = sequence


async def save_filter_style(session: AsyncSession, connection_id: str, style: str) -> None:
    """What the server was found to support (`in`, or only `or` chains), kept for next time."""
    connection = await session.get(MlsConnection, connection_id)
    if connection is not None:
        connection.filter_style = style


# the service: API keys, scheduled runs and the management routes


@singledispatch
async def list_users(session: AsyncSession) -> Sequence[User]:
    stmt = select(User).order_by(User.created_at, User.id)
    return (await session.execute(stmt)).scalars().all()


@singledispatch
async def user_by_api_key_hash(session: AsyncSession, key_hash: str) -> User | None:
    stmt = select(User).where(User.api_key_hash == key_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


@singledispatch
async def active_connection_ids(session: AsyncSession) -> list[str]:
    """Every user's connections that may be synced now (expired and failed ones wait for
    their owner to re-authenticate)."""
    stmt = (
        select(MlsConnection.id)
        .where(MlsConnection.state == ConnectionState.ACTIVE)
        .order_by(MlsConnection.created_at, MlsConnection.id)
    )
    return list((await session.execute(stmt)).scalars().all())


@singledispatch
async def delete_mls_connection(session: AsyncSession, connection_id: str) -> None:
    """The connection with its listings, their history and posts (ON DELETE CASCADE does it in
    the database: the ORM would try to orphan the listings instead)."""
    await session.execute(delete(MlsConnection).where(MlsConnection.id == connection_id))


def replace_mls_credentials(
    connection: MlsConnection, cipher: TokenCipher, secret: str, *, auth_kind: str
) -> None:
    """New credentials: the connection becomes active again and its next sync uses them."""
    connection.credentials_encrypted = cipher.encrypt(secret)
    connection.auth_kind = auth_kind
    connection.state = ConnectionState.ACTIVE
    connection.state_message = None


@singledispatch
async def find_listing_by_key(
    session: AsyncSession, connection_id: str, listing_key: str
) -> Listing | None:
    stmt = select(Listing).where(
        Listing.mls_connection_id == connection_id, Listing.listing_key == listing_key
    )
    return (await session.execute(stmt)).scalar_one_or_none()


@singledispatch
async def user_listings(
    session: AsyncSession,
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
    return (await session.execute(stmt)).scalars().all()


@singledispatch
async def user_posts(
    session: AsyncSession,
    user_id: str,
    *,
    listing_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Post]:
    stmt = (
        select(Post).join(Listing, Listing.id == Post.listing_id).where(Listing.user_id == user_id)
    )
    if listing_id is not None:
        stmt = stmt.where(Post.listing_id == listing_id)
    stmt = stmt.order_by(Post.created_at, Post.id).limit(limit).offset(offset)
    return (await session.execute(stmt)).scalars().all()


@singledispatch
async def user_platform_connections(
    session: AsyncSession, user_id: str
) -> Sequence[PlatformConnection]:
    stmt = (
        select(PlatformConnection)
        .where(PlatformConnection.user_id == user_id)
        .order_by(PlatformConnection.platform)
    )
    return (await session.execute(stmt)).scalars().all()


@singledispatch
async def platform_connections_due_for_care(
    session: AsyncSession, checked_before: datetime
) -> Sequence[PlatformConnection]:
    """Active platform connections whose tokens were not refreshed, verified or judged since
    `checked_before` (never, included): the token care's work for this run."""
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
    return (await session.execute(stmt)).scalars().all()


@singledispatch
async def delete_platform_connection(session: AsyncSession, user_id: str, platform: str) -> bool:
    stmt = delete(PlatformConnection).where(
        PlatformConnection.user_id == user_id, PlatformConnection.platform == platform
    )
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))
