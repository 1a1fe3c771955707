"""A user's MLS connections: join a shared feed or connect with credentials of one's own (a
private feed), list, read, change (re-authenticate), remove.

A connection is the user's membership in a feed: which feed, the user's agent and office MLS
ids, a name. Rules that need more than a field's shape live here and break with
`InvalidInput(field, ...)`. `user_id=None` is the operator (the CLI, with the database's keys);
a user's id limits every lookup to their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mls_sync.domain.errors import CONNECTION_NOT_FOUND, Conflict, InvalidInput, NotFound
from mls_sync.egress import EgressPolicy
from mls_sync.services.feeds import (
    KEY_FIELDS,
    PROVIDERS,
    FeedSettings,
    MlsCredentials,
    add_feed,
    filter_style_of,
    get_shared_feed,
    key_field_of,
    suspension_of,
    update_feed,
)
from mls_sync.services.records import MlsConnection, MlsFeed, UnitOfWork
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.sync.engine import SyncEngine
from mls_sync.sync.guard import SyncInProgressError, hold

__all__ = [
    "CONNECTION_NOT_FOUND",
    "KEY_FIELDS",
    "PROVIDERS",
    "ConnectionView",
    "MlsCredentials",
    "create_connection",
    "get_connection",
    "list_connections",
    "remove_connection",
    "update_connection",
]

SHARED_FEED_SETTINGS = (
    "this connection reads a shared MLS feed: its credentials and settings are the operator's"
)


@dataclass(frozen=True)
class ConnectionView:
    """A connection with what its feed says about the MLS (never the credentials)."""

    id: str
    user_id: str
    name: str
    feed_id: str
    shared_feed: bool
    agent_mls_id: str | None
    office_mls_id: str | None
    provider: str
    base_url: str
    auth_kind: str
    key_field: str
    filter_style: str
    state: str
    state_message: str | None
    last_sync_at: datetime | None
    created_at: datetime
    # When the feed's local copy first held the whole feed; None while it is still loading
    # (imports wait for it).
    feed_loaded_at: datetime | None = None
    # Until when the vendor has suspended the feed's credential (nothing is sent); None
    # when it is not suspended.
    feed_suspended_until: datetime | None = None

    @classmethod
    def of(cls, connection: MlsConnection, feed: MlsFeed) -> ConnectionView:
        return cls(
            id=connection.id,
            user_id=connection.user_id,
            name=connection.name,
            feed_id=feed.id,
            shared_feed=feed.owner_user_id is None,
            agent_mls_id=connection.agent_mls_id,
            office_mls_id=connection.office_mls_id,
            provider=feed.provider,
            base_url=feed.base_url,
            auth_kind=feed.auth_kind,
            key_field=key_field_of(feed),
            filter_style=filter_style_of(feed),
            state=connection.state,
            state_message=connection.state_message,
            last_sync_at=feed.last_run_at,  # the member is synced by its feed's runs
            created_at=connection.created_at,
            feed_loaded_at=feed.loaded_at,
            feed_suspended_until=suspension_of(feed),
        )


async def get_connection(
    uow: UnitOfWork, connection_id: str, *, user_id: str | None
) -> ConnectionView:
    """The connection; another user's answers exactly like a missing one."""
    connection = await _owned(uow, connection_id, user_id)
    return ConnectionView.of(connection, await repo.feed_of(uow, connection))


async def list_connections(uow: UnitOfWork, user_id: str) -> Sequence[ConnectionView]:
    return [
        ConnectionView.of(c, await repo.feed_of(uow, c))
        for c in await uow.connections.of_user(user_id)
    ]


async def create_connection(
    uow: UnitOfWork,
    cipher: TokenCipher,
    *,
    user_id: str,
    feed_id: str | None = None,
    base_url: str | None = None,
    credentials: MlsCredentials | None = None,
    name: str = "",
    agent_mls_id: str | None = None,
    office_mls_id: str | None = None,
    provider: str = "generic",
    key_field: str | None = None,
    filter_style: str | None = None,
    profile_overrides: Mapping[str, Any] | None = None,
    status_overrides: Mapping[str, str] | None = None,
    egress: EgressPolicy | None = None,
) -> ConnectionView:
    """Join the shared feed `feed_id`, or connect with credentials of one's own (`base_url`
    and `credentials`: a private feed). Key field, filter style, page size and budget come
    from the vendor profile unless given."""
    if feed_id is not None:
        if base_url is not None or credentials is not None:
            raise InvalidInput(
                "feedId", "give feedId (a shared feed) or baseUrl and credentials, not both"
            )
        feed = await get_shared_feed(uow, feed_id)
        if any(c.feed_id == feed.id for c in await uow.connections.of_user(user_id)):
            raise Conflict("You already have a connection to this MLS feed")
    else:
        if base_url is None:
            raise InvalidInput("baseUrl", "baseUrl (or the feedId of a shared feed) is needed")
        if credentials is None:
            raise InvalidInput("token", "the MLS credentials are needed")
        settings = FeedSettings(
            base_url=base_url,
            credentials=credentials,
            name=name,
            provider=provider,
            key_field=key_field,
            filter_style=filter_style,
            profile_overrides=profile_overrides,
            status_overrides=status_overrides,
        )
        feed = await add_feed(uow, cipher, settings, owner_user_id=user_id, egress=egress)
    connection = await repo.join_feed(
        uow,
        user_id=user_id,
        feed=feed,
        name=name,
        agent_mls_id=agent_mls_id,
        office_mls_id=office_mls_id,
    )
    await uow.flush()
    return ConnectionView.of(connection, feed)


async def update_connection(
    uow: UnitOfWork,
    cipher: TokenCipher,
    connection_id: str,
    *,
    user_id: str | None,
    name: str | None = None,
    agent_mls_id: str | None = None,
    office_mls_id: str | None = None,
    base_url: str | None = None,
    credentials: MlsCredentials | None = None,
    status_overrides: Mapping[str, str] | None = None,
    egress: EgressPolicy | None = None,
) -> ConnectionView:
    """Rename, change the agent or office, and on a private feed move or re-authenticate
    (new credentials make an expired connection active)."""
    connection = await _owned(uow, connection_id, user_id)
    feed = await repo.feed_of(uow, connection)
    private = feed.owner_user_id == connection.user_id
    refused = {"credentials": credentials, "baseUrl": base_url, "statusOverrides": status_overrides}
    for field, value in refused.items():
        if value is not None and not private:
            raise InvalidInput(field, SHARED_FEED_SETTINGS)
    if name is not None:
        connection.name = name
    if agent_mls_id is not None:
        connection.agent_mls_id = agent_mls_id or None
    if office_mls_id is not None:
        connection.office_mls_id = office_mls_id or None
    if private:  # the user's own feed follows its one connection's name and settings
        await update_feed(
            uow,
            cipher,
            feed,
            name=name,
            base_url=base_url,
            credentials=credentials,
            status_overrides_given=status_overrides,
            egress=egress,
        )
    await uow.flush()
    return ConnectionView.of(connection, feed)


async def remove_connection(engine: SyncEngine, connection_id: str, *, user_id: str | None) -> None:
    """Delete a connection with its listings, their history and posts (and its private feed,
    with the replica), unless its feed is being synced right now (`Conflict`, and nothing is
    deleted): a run never loses its rows half-way."""
    async with engine.db.transaction() as uow:
        connection = await _owned(uow, connection_id, user_id)
        feed = await repo.feed_of(uow, connection)
        private = feed.owner_user_id == connection.user_id
    async with hold(engine.guard, feed.id) as held:
        if not held:
            raise SyncInProgressError()
        async with engine.db.transaction() as uow:
            if private:
                await uow.feeds.delete(feed.id)
            else:
                await uow.connections.delete(connection_id)


async def _owned(uow: UnitOfWork, connection_id: str, user_id: str | None) -> MlsConnection:
    found = await repo.get_mls_connection(uow, connection_id, user_id=user_id)
    if found is None:
        raise NotFound(CONNECTION_NOT_FOUND)
    return found
