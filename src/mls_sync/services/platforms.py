"""A user's platform connections: the OAuth tokens the sync deletes posts with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from mls_sync.domain.errors import InvalidInput, NotFound
from mls_sync.services.records import PlatformConnection, UnitOfWork
from mls_sync.social.base import Login, Platform
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher

__all__ = [
    "Login",
    "Platform",
    "forget_platform_connection",
    "list_platform_connections",
    "set_platform_connection",
]


async def set_platform_connection(
    uow: UnitOfWork,
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
        uow,
        cipher,
        user_id=user_id,
        platform=platform.value,
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=expires_at,
        login=login.value if login is not None else None,
    )


async def list_platform_connections(uow: UnitOfWork, user_id: str) -> Sequence[PlatformConnection]:
    return await uow.platforms.of_user(user_id)


async def forget_platform_connection(uow: UnitOfWork, user_id: str, platform: Platform) -> None:
    """Forget the tokens: the platform's posts stay published until it is connected again."""
    if not await uow.platforms.delete(user_id, platform.value):
        raise NotFound("Platform connection not found")
