"""The composition root: builds the database, cipher, HTTP clients and engine from settings.

Everything the CLI, the API and workers need is opened here once and closed together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from mls_sync.config import Settings
from mls_sync.egress import EgressTransport
from mls_sync.executors import SyncExecutor, open_executor
from mls_sync.mls.transport import RetryPolicy
from mls_sync.observability.emf import EmfConfig, EmfWriter, emf_active
from mls_sync.observability.metrics import StoreSnapshot
from mls_sync.observability.monitor import run_monitor
from mls_sync.observability.redact import SECRETS, register_settings_secrets
from mls_sync.services.monitoring import store_snapshot
from mls_sync.social.registry import build_platform_clients, platform_configs
from mls_sync.store.crypto import TokenCipher, cipher_from_settings
from mls_sync.store.interface import Storage
from mls_sync.store.open import open_database
from mls_sync.store.types import utcnow
from mls_sync.sync.clients import budgets_for
from mls_sync.sync.engine import SyncEngine
from mls_sync.sync.guard import LeaseGuard
from mls_sync.sync.unpublish import Unpublisher


@dataclass
class Runtime:
    settings: Settings
    db: Storage
    cipher: TokenCipher
    engine: SyncEngine
    # Who runs the syncs the edges ask for (executors/).
    executor: SyncExecutor

    async def store_snapshot(self) -> StoreSnapshot:
        """What the metrics gauges show of this runtime's database (GET /metrics)."""
        return await store_snapshot(self.db)


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, db: Storage | None = None, clock: Callable[[], datetime] = utcnow
) -> AsyncIterator[Runtime]:
    """Everything, opened from settings; `clock` is what the outbox (deferred and claimed
    deletes) and the connection leases read (tests move it instead of sleeping)."""
    own_db = db is None
    register_settings_secrets(settings)  # the operator's secrets never reach a log line
    database: Storage = db or open_database(settings.async_database_url)
    cipher = cipher_from_settings(settings)
    cipher.seen = SECRETS.add_blob  # every stored secret, as it is used: never in a log line
    # Every MLS request (data and token endpoints) passes the egress policy: users choose
    # those URLs, so none may reach loopback or the private network unless the operator says.
    mls_http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.mls_timeout_seconds),
        transport=EgressTransport(
            settings.egress_policy,
            httpx.AsyncHTTPTransport(
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=20)
            ),
        ),
    )
    platform_http = httpx.AsyncClient(timeout=httpx.Timeout(settings.platform_timeout_seconds))
    alert_http = httpx.AsyncClient(timeout=httpx.Timeout(settings.alert_webhook_timeout_seconds))
    try:
        clients = build_platform_clients(platform_http, platform_configs(settings))
        # One sync per feed across every process on this database.
        guard = LeaseGuard(
            database,
            ttl=timedelta(seconds=settings.lease_ttl_seconds),
            renew_every=timedelta(seconds=settings.lease_renew_seconds),
            clock=clock,
        )
        unpublisher = Unpublisher(
            database,
            cipher,
            clients,
            backoff_seconds=settings.unpublish_backoff_seconds,
            per_platform_concurrency=settings.platform_concurrency,
            token_warn_within=timedelta(days=settings.platform_token_warn_days),
            token_check_every=timedelta(hours=settings.platform_token_check_hours),
            clock=clock,
            claimer=guard.holder,
        )
        engine = SyncEngine(
            database,
            cipher,
            mls_http,
            unpublisher,
            budgets=budgets_for(settings, database),
            batch_size=settings.mls_batch_size,
            full_check_every=timedelta(hours=settings.mls_full_check_hours),
            clock_skew=timedelta(seconds=settings.mls_clock_skew_seconds),
            retry=RetryPolicy(
                attempts=settings.mls_retry_attempts,
                backoff=settings.mls_retry_backoff_seconds,
                max_retry_after=settings.mls_max_retry_after_seconds,
            ),
            guard=guard,
            run_deadline=timedelta(seconds=settings.connection_run_seconds),
        )
        # Metrics and alerts per connection run; the slow-run rule for each run over everyone.
        engine.run_monitor = run_monitor(settings, alert_http)
        # Platform alerts (a retired API version, a token about to die) as they happen.
        unpublisher.alerts = engine.run_monitor.platform_alert
        engine.run_observers.append(engine.run_monitor.whole_run_finished)
        if emf_active(settings):
            engine.run_observers.append(EmfWriter(EmfConfig.from_settings(settings)))
        async with open_executor(settings, engine) as executor:
            yield Runtime(
                settings=settings, db=database, cipher=cipher, engine=engine, executor=executor
            )
    finally:
        await mls_http.aclose()
        await platform_http.aclose()
        await alert_http.aclose()
        if own_db:
            await database.dispose()
