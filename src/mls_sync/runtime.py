"""The composition root: builds the database, cipher, HTTP clients and engine from settings.

Everything the CLI, the API and workers need is opened here once and closed together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from mls_sync.config import Settings
from mls_sync.mls.limits import RateBudgets
from mls_sync.social.base import Platform
from mls_sync.social.registry import build_platform_clients
from mls_sync.store.crypto import TokenCipher, cipher_from_settings
from mls_sync.store.database import Database
from mls_sync.sync.engine import SyncEngine
from mls_sync.sync.unpublish import Unpublisher


@dataclass
class Runtime:
    settings: Settings
    db: Database
    cipher: TokenCipher
    engine: SyncEngine


@asynccontextmanager
async def open_runtime(settings: Settings, *, db: Database | None = None) -> AsyncIterator[Runtime]:
    own_db = db is None
    database = db or Database(settings.async_database_url)
    cipher = cipher_from_settings(settings)
    mls_http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.mls_timeout_seconds),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )
    platform_http = httpx.AsyncClient(timeout=httpx.Timeout(settings.platform_timeout_seconds))
    try:
        clients = build_platform_clients(platform_http, platform_base_urls(settings))
        unpublisher = Unpublisher(
            database, cipher, clients, backoff_seconds=settings.unpublish_backoff_seconds
        )
        engine = SyncEngine(
            database,
            cipher,
            mls_http,
            unpublisher,
            budgets=RateBudgets(settings.mls_requests_per_second),
            batch_size=settings.mls_batch_size,
            concurrency=settings.mls_concurrency,
        )
        yield Runtime(settings=settings, db=database, cipher=cipher, engine=engine)
    finally:
        await mls_http.aclose()
        await platform_http.aclose()
        if own_db:
            await database.dispose()


def platform_base_urls(settings: Settings) -> dict[Platform, str]:
    return {
        Platform.FACEBOOK: settings.facebook_graph_url,
        Platform.LINKEDIN: settings.linkedin_api_url,
        Platform.X: settings.x_api_url,
    }
