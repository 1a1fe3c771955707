"""A user's MLS connections: connect, list, read, change (re-authenticate), remove.

Rules that need more than a field's shape live here and break with `InvalidInput(field, ...)`.
Credentials are encrypted on the way in and never read back out. `user_id=None` is the
operator (the CLI, with the database's keys); a user's id limits every lookup to their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mls_sync.domain.errors import InvalidInput, NotFound
from mls_sync.domain.reso import StatusMapper
from mls_sync.mls.auth import encode_credentials
from mls_sync.mls.profiles import PROFILES, ProfileError, resolve_profile
from mls_sync.services.records import MlsConnection, UnitOfWork
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.sync.engine import SyncEngine
from mls_sync.sync.guard import SyncInProgressError, hold

PROVIDERS: tuple[str, ...] = tuple(PROFILES)
KEY_FIELDS = ("ListingKey", "ListingId")
CONNECTION_NOT_FOUND = "MLS connection not found"


@dataclass(frozen=True)
class MlsCredentials:
    """What the MLS gave the user: a bearer token, or an OAuth2 client (client credentials)."""

    auth_kind: str = "bearer"
    token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_url: str | None = None
    scope: str | None = None

    def secret(self) -> str:
        """The plaintext stored encrypted: the bare token, or a JSON object for OAuth2."""
        if self.auth_kind == "bearer":
            if not self.token:
                raise InvalidInput("token", "a bearer connection needs its token")
            return self.token
        if not self.client_id:
            raise InvalidInput("clientId", "an oauth2 connection needs clientId")
        if not self.client_secret:
            raise InvalidInput("clientSecret", "an oauth2 connection needs clientSecret")
        blob: dict[str, Any] = {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.scope:
            blob["scope"] = self.scope
        return encode_credentials(blob)


async def get_connection(
    uow: UnitOfWork, connection_id: str, *, user_id: str | None
) -> MlsConnection:
    """The connection; another user's answers exactly like a missing one."""
    found = await repo.get_mls_connection(uow, connection_id, user_id=user_id)
    if found is None:
        raise NotFound(CONNECTION_NOT_FOUND)
    return found


async def list_connections(uow: UnitOfWork, user_id: str) -> Sequence[MlsConnection]:
    return await uow.connections.of_user(user_id)


async def create_connection(
    uow: UnitOfWork,
    cipher: TokenCipher,
    *,
    user_id: str,
    base_url: str,
    credentials: MlsCredentials,
    name: str = "",
    provider: str = "generic",
    key_field: str = "ListingKey",
    filter_style: str = "in",
    profile_overrides: Mapping[str, Any] | None = None,
    status_overrides: Mapping[str, str] | None = None,
) -> MlsConnection:
    _check_url(base_url, "baseUrl")
    if key_field not in KEY_FIELDS:
        raise InvalidInput("keyField", f"one of {', '.join(KEY_FIELDS)}")
    secret = credentials.secret()
    overrides = _profile_overrides(provider, credentials, profile_overrides)
    statuses = _status_overrides(status_overrides)
    connection = await repo.create_mls_connection(
        uow,
        cipher,
        user_id=user_id,
        base_url=base_url,
        token=secret,
        name=name,
        provider=provider,
        key_field=key_field,
        filter_style=filter_style,
        auth_kind=credentials.auth_kind,
        profile_overrides=overrides,
    )
    connection.status_overrides = statuses
    await uow.flush()
    return connection


async def update_connection(
    uow: UnitOfWork,
    cipher: TokenCipher,
    connection_id: str,
    *,
    user_id: str | None,
    name: str | None = None,
    base_url: str | None = None,
    credentials: MlsCredentials | None = None,
    status_overrides: Mapping[str, str] | None = None,
) -> MlsConnection:
    """Rename, move, re-authenticate: new credentials make an expired connection active."""
    connection = await get_connection(uow, connection_id, user_id=user_id)
    if name is not None:
        connection.name = name
    if base_url is not None:
        connection.base_url = _check_url(base_url, "baseUrl").rstrip("/")
    if credentials is not None:
        try:
            secret = credentials.secret()
            overrides = _profile_overrides(
                connection.provider, credentials, connection.profile_overrides
            )
        except InvalidInput as exc:
            raise exc.nested_in("credentials") from None
        repo.replace_mls_credentials(connection, cipher, secret, auth_kind=credentials.auth_kind)
        connection.profile_overrides = overrides
    if status_overrides is not None:
        connection.status_overrides = _status_overrides(status_overrides)
    await uow.flush()
    return connection


async def remove_connection(engine: SyncEngine, connection_id: str, *, user_id: str | None) -> None:
    """Delete a connection with its listings, their history and posts, unless it is being
    synced right now (`Conflict`, and nothing is deleted): a run never loses its rows
    half-way."""
    async with engine.db.transaction() as uow:
        await get_connection(uow, connection_id, user_id=user_id)
    async with hold(engine.guard, connection_id) as held:
        if not held:
            raise SyncInProgressError()
        async with engine.db.transaction() as uow:
            await uow.connections.delete(connection_id)


def _check_url(url: str, field: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(field, "must be an http:// or https:// URL")
    return url


def _profile_overrides(
    provider: str, credentials: MlsCredentials, given: Mapping[str, Any] | None
) -> dict[str, Any]:
    if provider not in PROFILES:
        raise InvalidInput("provider", f"unknown MLS provider; one of {', '.join(PROFILES)}")
    overrides = dict(given or {})
    overrides.pop("auth_kind", None)  # the credentials say which
    if credentials.token_url:
        overrides["token_url"] = credentials.token_url
    try:
        resolve_profile(provider, {**overrides, "auth_kind": credentials.auth_kind})
    except ProfileError as exc:
        field = "tokenUrl" if exc.setting == "token_url" else "profileOverrides"
        raise InvalidInput(field, str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise InvalidInput("profileOverrides", str(exc)) from None
    return overrides


def _status_overrides(given: Mapping[str, str] | None) -> dict[str, str]:
    try:
        StatusMapper(given or None)
    except ValueError as exc:
        raise InvalidInput("statusOverrides", str(exc)) from None
    return dict(given or {})
