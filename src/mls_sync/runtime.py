"""The composition root: builds the database, cipher, HTTP clients and engine from settings.

Everything the CLI, the API and workers need is opened here once and closed together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import httpx
from pydantic import SecretStr

from mls_sync.aws.emf import EmfConfig, EmfWriter, emf_active
from mls_sync.config import Settings
from mls_sync.executor import SyncExecutor, open_executor
from mls_sync.mls.limits import Budgets, RateBudgets
from mls_sync.mls.shared_limits import SharedRateBudgets
from mls_sync.mls.transport import RetryPolicy
from mls_sync.observability.monitor import run_monitor
from mls_sync.social.base import Platform
from mls_sync.social.registry import OAuthApp, PlatformConfig, build_platform_clients
from mls_sync.store.crypto import TokenCipher, cipher_from_settings
from mls_sync.store.database import Database
from mls_sync.store.open import open_database
from mls_sync.sync.engine import SyncEngine
from mls_sync.sync.guard import LeaseGuard
from mls_sync.sync.unpublish import Unpublisher


@dataclass
class Runtime:
    settings: Settings
    db: Database
    cipher: TokenCipher
    engine: SyncEngine
    # Who runs the syncs the API asks for (executor.py); open_runtime always sets one.
    executor: SyncExecutor | None = None


@asynccontextmanager
async def open_runtime(settings: Settings, *, db: Database | None = None) -> AsyncIterator[Runtime]:
    own_db = db is None
    database = db or open_database(settings.async_database_url)
    cipher = cipher_from_settings(settings)
    mls_http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.mls_timeout_seconds),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    )
    platform_http = httpx.AsyncClient(timeout=httpx.Timeout(settings.platform_timeout_seconds))
    alert_http = httpx.AsyncClient(timeout=httpx.Timeout(settings.alert_webhook_timeout_seconds))
    try:
        clients = build_platform_clients(platform_http, platform_configs(settings))
        unpublisher = Unpublisher(
            database,
            cipher,
            clients,
            backoff_seconds=settings.unpublish_backoff_seconds,
            per_platform_concurrency=settings.platform_concurrency,
            token_warn_within=timedelta(days=settings.platform_token_warn_days),
            token_check_every=timedelta(hours=settings.platform_token_check_hours),
        )
        engine = SyncEngine(
            database,
            cipher,
            mls_http,
            unpublisher,
            budgets=mls_budgets(settings, database),
            batch_size=settings.mls_batch_size,
            concurrency=settings.mls_concurrency,
            full_check_every=timedelta(hours=settings.mls_full_check_hours),
            clock_skew=timedelta(seconds=settings.mls_clock_skew_seconds),
            retry=RetryPolicy(
                attempts=settings.mls_retry_attempts,
                backoff=settings.mls_retry_backoff_seconds,
                max_retry_after=settings.mls_max_retry_after_seconds,
            ),
            # One sync per connection across every process on this database.
            guard=LeaseGuard(
                database,
                ttl=timedelta(seconds=settings.lease_ttl_seconds),
                renew_every=timedelta(seconds=settings.lease_renew_seconds),
            ),
        )
        # Metrics and alerts per connection run; the slow-run rule for each run over everyone.
        engine.run_monitor = run_monitor(settings, alert_http)
        # Platform alerts (a retired API version, a token about to die) as they happen.
        unpublisher.alerts = engine.run_monitor.platform_alert
        engine.run_observers.append(engine.run_monitor.whole_run_finished)
        if emf_active(settings):
            engine.run_observers.append(EmfWriter(EmfConfig.from_settings(settings)))
        async with open_executor(settings, database, engine) as executor:
            yield Runtime(
                settings=settings, db=database, cipher=cipher, engine=engine, executor=executor
            )
    finally:
        await mls_http.aclose()
        await platform_http.aclose()
        await alert_http.aclose()
        if own_db:
            await database.dispose()


def mls_budgets(settings: Settings, db: Database) -> Budgets:
    """MLS request budgets in this process, or shared by every process through PostgreSQL
    (workers on many machines: MLS_SYNC_SHARED_RATE_LIMITS, on with the procrastinate
    executor)."""
    kwargs = {
        "requests_per_hour": settings.mls_requests_per_hour,
        "requests_per_day": settings.mls_requests_per_day,
        "max_wait": settings.mls_budget_max_wait_seconds,
    }
    if settings.uses_shared_rate_limits and not db.is_sqlite:
        return SharedRateBudgets(db, settings.mls_requests_per_second, **kwargs)
    return RateBudgets(settings.mls_requests_per_second, **kwargs)


def platform_configs(settings: Settings) -> dict[Platform, PlatformConfig]:
    """Each platform's URLs, API version and this application's OAuth client, from settings."""
    s = settings
    return {
        Platform.FACEBOOK: PlatformConfig(
            base_url=s.facebook_graph_url,
            api_version=s.facebook_api_version,
            app=_app(s.facebook_app_id, s.facebook_app_secret),
        ),
        Platform.INSTAGRAM: PlatformConfig(
            base_url=s.instagram_graph_url,
            api_version=s.instagram_api_version,
            token_url=s.instagram_token_url,
        ),
        Platform.LINKEDIN: PlatformConfig(
            base_url=s.linkedin_api_url,
            api_version=s.linkedin_api_version,
            token_url=s.linkedin_token_url,
            app=_app(s.linkedin_client_id, s.linkedin_client_secret),
        ),
        Platform.X: PlatformConfig(
            base_url=s.x_api_url,
            token_url=s.x_token_url,
            app=_app(s.x_client_id, s.x_client_secret),
        ),
        Platform.GOOGLE_BUSINESS: PlatformConfig(
            base_url=s.google_business_api_url,
            token_url=s.google_token_url,
            app=_app(s.google_client_id, s.google_client_secret),
        ),
        Platform.PINTEREST: PlatformConfig(
            base_url=s.pinterest_api_url,
            token_url=s.pinterest_token_url,
            app=_app(s.pinterest_client_id, s.pinterest_client_secret),
        ),
        Platform.TIKTOK: PlatformConfig(
            token_url=s.tiktok_token_url,
            app=_app(s.tiktok_client_key, s.tiktok_client_secret),
        ),
    }


def _app(client_id: str | None, secret: SecretStr | None) -> OAuthApp:
    return OAuthApp(client_id, secret.get_secret_value() if secret is not None else None)
