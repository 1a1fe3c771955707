"""What every backend does alike, written once over the `UnitOfWork` of store/interface.py:
create a row, get one by key (None for another user's), change attributes. They never commit:
the caller owns the unit of work (`Database.transaction()`).

Queries that each backend answers its own way are the aggregates' repositories instead
(`uow.listings.of_connection(...)`, store/sql/ and store/dynamo/)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mls_sync.domain.status import ConnectionState, ListingStatus
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import (
    Listing,
    ListingStatusHistory,
    MlsConnection,
    MlsFeed,
    PlatformConnection,
    Post,
    SyncRun,
    User,
)
from mls_sync.store.types import utcnow

# users


async def create_user(session: UnitOfWork, email: str) -> User:
    user = User(email=email.strip().lower())
    session.add(user)
    await session.flush()
    return user


# MLS feeds and connections (a user's membership in a feed)


async def create_feed(
    session: UnitOfWork,
    cipher: TokenCipher,
    *,
    owner_user_id: str | None,
    base_url: str,
    secret: str,
    name: str = "",
    provider: str = "generic",
    auth_kind: str = "bearer",
    key_field: str | None = None,
    filter_style: str | None = None,
    profile_overrides: dict[str, Any] | None = None,
    status_overrides: dict[str, Any] | None = None,
    cadence_seconds: int = 900,
) -> MlsFeed:
    """`owner_user_id` None: the operator's shared feed; a user's id: their private feed.
    `secret` is the bare token, or the OAuth2 client as a JSON object; stored encrypted."""
    feed = MlsFeed(
        owner_user_id=owner_user_id,
        base_url=base_url.rstrip("/"),
        credentials_encrypted=cipher.encrypt(secret),
        name=name,
        provider=provider,
        auth_kind=auth_kind,
        key_field=key_field,
        filter_style=filter_style,
        status_overrides=status_overrides or {},
        profile_overrides=profile_overrides or {},
        bookmark_keys=[],
        cadence_seconds=cadence_seconds,
    )
    session.add(feed)
    await session.flush()
    return feed


async def join_feed(
    session: UnitOfWork,
    *,
    user_id: str,
    feed: MlsFeed,
    name: str = "",
    agent_mls_id: str | None = None,
    office_mls_id: str | None = None,
) -> MlsConnection:
    connection = MlsConnection(
        user_id=user_id,
        feed_id=feed.id,
        name=name,
        agent_mls_id=agent_mls_id,
        office_mls_id=office_mls_id,
        state=feed.state,
        state_message=feed.state_message,
    )
    session.add(connection)
    await session.flush()
    return connection


async def create_mls_connection(
    session: UnitOfWork,
    cipher: TokenCipher,
    *,
    user_id: str,
    base_url: str,
    token: str | None = None,
    name: str = "",
    provider: str = "generic",
    key_field: str | None = None,
    filter_style: str | None = None,
    auth_kind: str = "bearer",
    credentials: dict[str, Any] | None = None,
    profile_overrides: dict[str, Any] | None = None,
) -> MlsConnection:
    """A connection with its own credentials: a private feed of the user and their
    membership in it. `token` for a static bearer token; `credentials` (e.g. client_id and
    client_secret for OAuth2) are stored as one encrypted JSON object."""
    if (token is None) == (credentials is None):
        raise ValueError("give either a token or credentials")
    secret = token if token is not None else json.dumps(credentials, sort_keys=True)
    feed = await create_feed(
        session,
        cipher,
        owner_user_id=user_id,
        base_url=base_url,
        secret=secret,
        name=name,
        provider=provider,
        auth_kind=auth_kind,
        key_field=key_field,
        filter_style=filter_style,
        profile_overrides=profile_overrides,
    )
    return await join_feed(session, user_id=user_id, feed=feed, name=name)


async def get_mls_connection(
    session: UnitOfWork, connection_id: str, *, user_id: str | None = None
) -> MlsConnection | None:
    """The connection, or None when it does not exist or belongs to another user (the two are
    indistinguishable on purpose)."""
    connection = await session.get(MlsConnection, connection_id)
    if connection is None or (user_id is not None and connection.user_id != user_id):
        return None
    return connection


async def get_feed(
    session: UnitOfWork, feed_id: str, *, user_id: str | None = None
) -> MlsFeed | None:
    """The feed; with a user's id, only their private feed (a shared feed, or another user's,
    answers None: only the operator manages those)."""
    feed = await session.get(MlsFeed, feed_id)
    if feed is None or (user_id is not None and feed.owner_user_id != user_id):
        return None
    return feed


async def feed_of(session: UnitOfWork, connection: MlsConnection) -> MlsFeed:
    feed = await session.get(MlsFeed, connection.feed_id)
    if feed is None:  # guarded by a foreign key; kept for the type checker
        raise LookupError(f"MLS connection {connection.id} has no feed")
    return feed


async def mark_feed(
    session: UnitOfWork, feed_id: str, state: ConnectionState, message: str | None
) -> None:
    """The feed's state, taken by every member connection (what users see)."""
    feed = await session.get(MlsFeed, feed_id)
    if feed is not None:
        feed.state = state
        feed.state_message = message
    await session.connections.mark_feed(feed_id, state, message)


# listings


async def add_listing(
    session: UnitOfWork,
    *,
    connection: MlsConnection,
    listing_key: str,
    mls_number: str,
    status: ListingStatus = ListingStatus.ACTIVE,
) -> Listing:
    listing = Listing(
        user_id=connection.user_id,
        mls_connection_id=connection.id,
        feed_id=connection.feed_id,
        listing_key=listing_key,
        mls_number=mls_number,
        status=status,
    )
    session.add(listing)
    await session.flush()
    return listing


async def get_listing(
    session: UnitOfWork, listing_id: str, *, user_id: str | None = None
) -> Listing | None:
    listing = await session.get(Listing, listing_id)
    if listing is None or (user_id is not None and listing.user_id != user_id):
        return None
    return listing


async def record_status_change(
    session: UnitOfWork,
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


# platform connections and posts


async def upsert_platform_connection(
    session: UnitOfWork,
    cipher: TokenCipher,
    *,
    user_id: str,
    platform: str,
    access_token: str,
    refresh_token: str | None = None,
    expires_at: datetime | None = None,
    login: str | None = None,
) -> PlatformConnection:
    """Store (or replace) the tokens, encrypted; the connection becomes active and its token
    checks start afresh."""
    connection = await session.platforms.get(user_id, platform)
    if connection is None:
        connection = PlatformConnection(user_id=user_id, platform=platform)
        session.add(connection)
    store_platform_tokens(
        connection, cipher, access_token=access_token, refresh_token=None, expires_at=expires_at
    )
    connection.refresh_token_encrypted = cipher.encrypt(refresh_token) if refresh_token else None
    connection.login = login
    connection.tokens_checked_at = None
    await session.flush()
    return connection


async def add_post(
    session: UnitOfWork, *, listing: Listing, platform: str, platform_post_id: str
) -> Post:
    post = Post(listing_id=listing.id, platform=platform, platform_post_id=platform_post_id)
    session.add(post)
    await session.flush()
    return post


# sync runs


async def start_run(
    session: UnitOfWork,
    *,
    trigger: str,
    scope: str,
    scope_id: str | None,
    user_id: str | None,
    feed_run_id: str | None = None,
    flush: bool = True,
) -> SyncRun:
    """`feed_run_id`: a connection's row of a feed's run, pointing at the feed's row.
    `flush=False`: many rows written by one later flush (a cycle's runs), which sets their
    ids."""
    run = SyncRun(
        trigger=trigger,
        scope=scope,
        scope_id=scope_id,
        user_id=user_id,
        feed_run_id=feed_run_id,
        totals={},
        errors=[],
    )
    session.add(run)
    if flush:
        await session.flush()
    return run


async def finish_run(
    session: UnitOfWork,
    run_id: str,
    *,
    success: bool,
    message: str,
    totals: dict[str, Any],
    errors: list[dict[str, Any]],
    status_changes: list[dict[str, Any]] | None = None,
) -> None:
    await session.runs.finish(
        run_id,
        {
            "finished_at": utcnow(),
            "state": "finished",
            "success": success,
            "message": message,
            "totals": totals,
            "errors": errors,
            "status_changes": status_changes or [],
        },
    )


async def get_run(session: UnitOfWork, run_id: str, *, user_id: str | None) -> SyncRun | None:
    """Another user's run answers None, exactly like a run that does not exist."""
    run = await session.get(SyncRun, run_id)
    if run is None or (user_id is not None and run.user_id != user_id):
        return None
    return run


# platform tokens (the unpublish drain)


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


# MLS replication state (per feed)


async def save_bookmark(
    session: UnitOfWork, feed_id: str, timestamp: datetime | None, keys: Sequence[str]
) -> None:
    """The replication bookmark; written in the transaction that commits the changes it
    covers, never before."""
    feed = await session.get(MlsFeed, feed_id)
    if feed is not None:
        feed.bookmark_timestamp = timestamp
        feed.bookmark_keys = list(keys)


async def finish_load(
    session: UnitOfWork,
    feed_id: str,
    *,
    at: datetime,
    bookmark: datetime | None,
    entity_event_sequence: int | None = None,
) -> None:
    """The replica held the whole feed at `at` (a first load, or a reconciliation)."""
    feed = await session.get(MlsFeed, feed_id)
    if feed is None:
        return
    feed.loaded_at = feed.loaded_at or at
    feed.reconciled_at = at
    if entity_event_sequence is not None:
        _advance_sequence(feed, entity_event_sequence)
    if bookmark is not None and (
        feed.bookmark_timestamp is None or bookmark > feed.bookmark_timestamp
    ):
        feed.bookmark_timestamp = bookmark
        feed.bookmark_keys = []


async def save_entity_event_sequence(session: UnitOfWork, feed_id: str, sequence: int) -> None:
    """The last EntityEventSequence applied; written in the transaction that commits the
    changes it covers, and never moved backwards."""
    feed = await session.get(MlsFeed, feed_id)
    if feed is not None:
        _advance_sequence(feed, sequence)


def _advance_sequence(feed: MlsFeed, sequence: int) -> None:
    current = feed.entity_event_sequence
    if current is None or sequence > current:
        feed.entity_event_sequence = sequence


async def save_filter_style(session: UnitOfWork, feed_id: str, style: str) -> None:
    """What the server was found to support (`in`, or only `or` chains), kept for next time."""
    feed = await session.get(MlsFeed, feed_id)
    if feed is not None:
        feed.filter_style = style


# credentials


async def replace_mls_credentials(
    session: UnitOfWork, feed: MlsFeed, cipher: TokenCipher, secret: str, *, auth_kind: str
) -> None:
    """New credentials: the feed and its members become active again and its next run uses
    them."""
    feed.credentials_encrypted = cipher.encrypt(secret)
    feed.auth_kind = auth_kind
    await mark_feed(session, feed.id, ConnectionState.ACTIVE, None)
