"""Helpers for the API tests: the app over an in-process HTTP client, users with API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from mls_sync.api import create_app
from mls_sync.config import Settings
from mls_sync.runtime import Runtime
from mls_sync.services import users
from mls_sync.store.database import Database
from mls_sync.store.migrate import upgrade

CRON_SECRET = "test-cron-secret"
MISSING_ID = "0123456789abcdef0123456789abcdef"  # well-formed, never issued


def service_settings(settings: Settings, **changes: Any) -> Settings:
    """The test settings as `serve` would use them: a cron secret, no scheduler."""
    update: dict[str, Any] = {"scheduler_enabled": False, "cron_secret": CRON_SECRET, **changes}
    if isinstance(update["cron_secret"], str):
        update["cron_secret"] = SecretStr(update["cron_secret"])
    return settings.model_copy(update=update)


@asynccontextmanager
async def api_client(runtime: Runtime, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app, on the test's runtime, over httpx's ASGI transport (real HTTP semantics,
    no socket)."""
    app = create_app(service_settings(runtime.settings, **changes), runtime=runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


async def new_user(runtime: Runtime, email: str = "agent@example.com") -> tuple[str, str]:
    """(user id, API key)"""
    async with runtime.db.transaction() as session:
        user, key = await users.add_user(session, email)
        return user.id, key


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def migrated_with_user(settings: Settings, email: str = "agent@example.com") -> str:
    """Migrate the settings' database and add one user; returns the user's API key (for tests
    that then start a real server on that database)."""
    db = Database(settings.async_database_url)
    try:
        await upgrade(db)
        async with db.transaction() as session:
            _, key = await users.add_user(session, email)
        return key
    finally:
        await db.dispose()
