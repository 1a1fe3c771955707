"""The FastAPI application of `mls-sync serve`: the routes, and a lifespan that opens the
runtime and runs the embedded scheduler."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from mls_sync import __version__
from mls_sync.api import (
    admin_feeds,
    connections,
    cron,
    dashboard,
    doctor,
    errors,
    health,
    listings,
    metrics,
    platforms,
    posts,
    runs,
    sync_routes,
    users,
)
from mls_sync.api.auth_throttle import AuthThrottle
from mls_sync.api.body_limit import BodySizeLimit
from mls_sync.api.deps import document_guards
from mls_sync.config import Settings, cron_trigger
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.scheduler import SyncScheduler

DESCRIPTION = """Keeps listings in step with their MLS and takes down the social posts of sold
listings.

Authenticate user routes with `Authorization: Bearer <API key>` (`mls-sync users add EMAIL`),
and the cron route with `Authorization: Bearer <CRON_SECRET>`."""


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The app. With `runtime`, the app uses it (tests); otherwise its lifespan opens one from
    `settings` and closes it on shutdown. The lifespan also runs the scheduler, unless
    `settings.scheduler_enabled` is false. `clock` times the sign-in throttle."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            opened = (
                runtime
                if runtime is not None
                else await stack.enter_async_context(open_runtime(settings))
            )
            app.state.runtime = opened
            # With workers (MLS_SYNC_EXECUTOR=procrastinate) their periodic task is the schedule.
            if settings.scheduler_enabled and settings.executor == "inline":
                scheduler = SyncScheduler(
                    opened.engine,
                    trigger=cron_trigger(settings.schedule_cron),
                    grace_seconds=settings.shutdown_grace_seconds,
                )
                scheduler.start()
                app.state.scheduler = scheduler
                # Runs before the runtime closes (exit stacks unwind last-in, first-out).
                stack.push_async_callback(scheduler.stop)
            yield
        app.state.runtime = runtime
        app.state.scheduler = None

    app = FastAPI(
        title="MLS Status Sync",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings  # the app's own: the cron secret, the scheduler
    app.state.runtime = runtime
    app.state.scheduler = None
    app.state.auth_throttle = AuthThrottle(limit=settings.auth_failures_per_minute, clock=clock)
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    for module in (health, cron, sync_routes, users, connections, platforms, listings, posts):
        app.include_router(module.router)
    app.include_router(admin_feeds.router)  # /api/admin/feeds, the operator's
    app.include_router(runs.router)  # run history (monitoring)
    app.include_router(doctor.router)  # GET /api/doctor, the caller's health report
    app.include_router(metrics.router)  # GET /metrics, Prometheus
    dashboard.install(app)  # the page at /, its sign-in and its static files
    document_guards(app)  # every guarded route names its 401, 429 (and 503)
    return app
