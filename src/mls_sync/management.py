"""Managing a user's own data: users and API keys, MLS and platform connections, posts.

The HTTP management routes and the CLI commands both call these, inside the caller's unit of
work (they never commit). Rules that need more than a field's shape live here, and break with
`InvalidInput(field, message)`, which the API answers as a 422 naming the field. Secrets are
encrypted on the way in and never read back out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.reso import StatusMapper
from mls_sync.mls.auth import encode_credentials
from mls_sync.mls.profiles import PROFILES, resolve_profile
from mls_sync.social.base import Login, Platform
from mls_sync.store import api_keys
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.models import Listing, MlsConnection, PlatformConnection, Post, User

__all__ = [
    "PROVIDERS",
    "InvalidInput",
    "Login",
    "MlsCredentials",
    "Platform",
    "PostExistsError",
    "UserExistsError",
    "add_post",
    "add_user",
    "create_mls_connection",
    "issue_api_key",
    "set_platform_connection",
    "update_mls_connection",
]

PROVIDERS: tuple[str, ...] = tuple(PROFILES)


class InvalidInput(ValueError):
    """A request that is well-formed but wrong; `field` is its camelCase name on the wire."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class UserExistsError(ValueError):
    """A user with this email exists already."""


class PostExistsError(ValueError):
    """The listing already has this platform's post with this id."""


# users and keys


async def add_user(session: AsyncSession, email: str) -> tuple[User, str]:
    """A new user and their first API key (plaintext, shown once)."""
    if await repo.find_user(session, email) is not None:
        raise UserExistsError(f"A user with email {email.strip().lower()} exists already")
    user = await repo.create_user(session, email)
    return user, api_keys.issue(user)


async def issue_api_key(session: AsyncSession, user: User) -> str:
    """A new key; the old one stops working when the transaction commits."""
    key = api_keys.issue(user)
    await session.flush()
    return key


# MLS connections


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


async def create_mls_connection(
    session: AsyncSession,
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
    secret = credentials.secret()
    overrides = _profile_overrides(provider, credentials, profile_overrides)
    statuses = _status_overrides(status_overrides)
    connection = await repo.create_mls_connection(
        session,
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
    await session.flush()
    return connection


async def update_mls_connection(
    session: AsyncSession,
    cipher: TokenCipher,
    connection: MlsConnection,
    *,
    name: str | None = None,
    base_url: str | None = None,
    credentials: MlsCredentials | None = None,
    status_overrides: Mapping[str, str] | None = None,
) -> MlsConnection:
    """Rename, move, re-authenticate: new credentials make an expired connection active."""
    if name is not None:
        connection.name = name
    if base_url is not None:
        connection.base_url = base_url.rstrip("/")
    if credentials is not None:
        secret = credentials.secret()
        overrides = _profile_overrides(
            connection.provider, credentials, connection.profile_overrides
        )
        repo.replace_mls_credentials(connection, cipher, secret, auth_kind=credentials.auth_kind)
        connection.profile_overrides = overrides
    if status_overrides is not None:
        connection.status_overrides = _status_overrides(status_overrides)
    await session.flush()
    return connection


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
    except (ValueError, TypeError) as exc:
        field = "tokenUrl" if "token_url" in str(exc) else "profileOverrides"
        raise InvalidInput(field, str(exc)) from None
    return overrides


def _status_overrides(given: Mapping[str, str] | None) -> dict[str, str]:
    try:
        StatusMapper(given or None)
    except ValueError as exc:
        raise InvalidInput("statusOverrides", str(exc)) from None
    return dict(given or {})


# platform connections and posts


async def set_platform_connection(
    session: AsyncSession,
    cipher: TokenCipher,
    *,
    user_id: str,
    platform: Platform,
    access_token: str,
    refresh_token: str | None = None,
    expires_at: datetime | None = None,
    login: Login | None = None,
) -> PlatformConnection:
    """Store (or replace) the user's tokens for a platform; the connection becomes active.

    `login` matters for Instagram only: with Facebook Login the access token is the Facebook
    Page's token and deletes work; with Instagram Login (the default) Meta refuses them."""
    if login is not None and platform is not Platform.INSTAGRAM:
        raise InvalidInput("login", f"{platform.value} has one login; leave login unset")
    if platform is Platform.INSTAGRAM and login is None:
        login = Login.INSTAGRAM
    return await repo.upsert_platform_connection(
        session,
        cipher,
        user_id=user_id,
        platform=platform.value,
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=expires_at,
        login=login.value if login is not None else None,
    )


async def add_post(
    session: AsyncSession, listing: Listing, *, platform: Platform, platform_post_id: str
) -> Post:
    """A post that is published on the platform, so the sync can take it down when sold."""
    for post in await repo.listing_posts(session, listing.id):
        if post.platform == platform.value and post.platform_post_id == platform_post_id:
            raise PostExistsError("This post is registered already")
    return await repo.add_post(
        session, listing=listing, platform=platform.value, platform_post_id=platform_post_id
    )
