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


# MLS connections


async def create_mls_connection(
    session: UnitOfWork,
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
    session: UnitOfWork, connection_id: str, *, user_id: str | None = None
) -> MlsConnection | None:
    """The connection, or None when it does not exist or belongs to another user (the two are
    indistinguishable on purpose)."""
    connection = await session.get(MlsConnection, connection_id)
    if connection is None or (user_id is not None and connection.user_id != user_id):
        return None
    return connection


async def mark_connection(
    session: UnitOfWork, connection_id: str, state: ConnectionState, message: str | None
) -> None:
    connection = await session.get(MlsConnection, connection_id)
    if connection is not None:
        connection.state = state
        connection.state_message = message


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
    session: UnitOfWork, *, trigger: str, scope: str, scope_id: str | None, user_id: str | None
) -> SyncRun:
    run = SyncRun(
        trigger=trigger, scope=scope, scope_id=scope_id, user_id=user_id, totals={}, errors=[]
    )
    session.add(run)
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


# MLS replication state


async def save_bookmark(
    session: UnitOfWork, connection_id: str, timestamp: datetime | None, keys: Sequence[str]
) -> None:
    """The replication bookmark; written in the transaction that commits the changes it
    covers, never before."""
    connection = await session.get(MlsConnection, connection_id)
    if connection is not None:
        connection.bookmark_timestamp = timestamp
        connection.bookmark_keys = list(keys)


async def finish_full_check(
    session: UnitOfWork,
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
    session: UnitOfWork, connection_id: str, sequence: int
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


async def save_filter_style(session: UnitOfWork, connection_id: str, style: str) -> None:
    """What the server was found to support (`in`, or only `or` chains), kept for next time."""
    connection = await session.get(MlsConnection, connection_id)
    if connection is not None:
        connection.filter_style = style


# credentials


def replace_mls_credentials(
    connection: MlsConnection, cipher: TokenCipher, secret: str, *, auth_kind: str
) -> None:
    """New credentials: the connection becomes active again and its next sync uses them."""
    connection.credentials_encrypted = cipher.encrypt(secret)
    connection.auth_kind = auth_kind
    connection.state = ConnectionState.ACTIVE
    connection.state_message = None
