"""The procrastinate app: tasks, their locks and retries, and the periodic tasks.

One app per process, built from settings (no module-level app): the API defers jobs through
it, `mls-sync worker` runs them. Tasks reach the process's runtime (its engine) through the
worker's `additional_context`, and each calls one function of services/queued_runs.py.

- `sync_connection`: `lock` = the connection (no two workers on one connection; a second job
  waits for the first) and `queueing_lock` = the connection (at most one waiting job per
  connection: a request while one is waiting is told so instead of piling up).
- `sync_feed`: `lock` and `queueing_lock` = the feed: one run of a feed at a time, at most one
  waiting.
- `sync_user`: fans out one `sync_connection` job per connection of the user;
  `sync_everyone`: one `sync_feed` job per active feed (its members share the run, so the MLS
  sees one replication per feed whatever the number of agents).
- `sync_listing`, `drain_unpublish`.
- periodic `schedule_syncs` (the settings' `schedule_cron`): what the embedded scheduler does
  in single-machine mode; procrastinate records each tick in PostgreSQL, so any number of
  workers defer it once.
- periodic `retry_stalled_jobs` (procrastinate's recipe): jobs of workers whose heartbeat
  stopped (killed, machine gone) go back to the queue.
"""

from __future__ import annotations

from typing import Protocol

from procrastinate import App, JobContext, PsycopgConnector, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.engine import make_url

from mls_sync.config import Settings
from mls_sync.services import queued_runs
from mls_sync.sync.deferred import DeferConnection
from mls_sync.sync.engine import SyncEngine

SYNC_CONNECTION = "sync_connection"
SYNC_FEED = "sync_feed"
SYNC_USER = "sync_user"
SYNC_EVERYONE = "sync_everyone"
SYNC_LISTING = "sync_listing"
DRAIN_UNPUBLISH = "drain_unpublish"
SCHEDULE_SYNCS = "schedule_syncs"
RETRY_STALLED_JOBS = "retry_stalled_jobs"
# Backoff base, seconds: attempt n waits 2**n (2, 4, 8, ... 256 s), enough to outlast the
# lease of a worker that died holding a connection (MLS_SYNC_LEASE_TTL_SECONDS, default 60).
RETRY_BASE = 2


class HasEngine(Protocol):
    """What a worker's `additional_context["runtime"]` must offer (the runtime does)."""

    engine: SyncEngine


def conninfo(database_url: str) -> str:
    """libpq's form of the service's SQLAlchemy URL (psycopg takes no driver suffix)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def procrastinate_cron(expression: str) -> str:
    """Our cron (5 fields, or 6 with a *leading* seconds field) in croniter's form, which
    puts the seconds field last."""
    fields = expression.split()
    if len(fields) == 6:
        fields = fields[1:] + fields[:1]
    return " ".join(fields)


class Deferrer:
    """Defers the app's jobs with the right locks; the API's executor and the fan-out tasks
    use it."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def connection(
        self, connection_id: str, run_id: str, parent_id: str | None, *, trigger: str
    ) -> bool:
        """False when a sync of this connection is already waiting (its queueing lock)."""
        try:
            await self.app.configure_task(
                SYNC_CONNECTION, lock=connection_id, queueing_lock=connection_id
            ).defer_async(
                connection_id=connection_id, run_id=run_id, parent_id=parent_id, trigger=trigger
            )
        except AlreadyEnqueued:
            return False
        return True

    async def user(self, user_id: str, run_id: str, *, trigger: str) -> None:
        await self.app.configure_task(SYNC_USER).defer_async(
            user_id=user_id, run_id=run_id, trigger=trigger
        )

    async def everyone(self, run_id: str, *, trigger: str) -> None:
        await self.app.configure_task(SYNC_EVERYONE).defer_async(run_id=run_id, trigger=trigger)

    async def listing(self, listing_id: str, run_id: str, *, trigger: str) -> None:
        await self.app.configure_task(SYNC_LISTING).defer_async(
            listing_id=listing_id, run_id=run_id, trigger=trigger
        )

    async def feed(
        self,
        feed_id: str,
        run_id: str,
        parent_id: str | None,
        *,
        trigger: str,
        only_if_due: bool = False,
    ) -> bool:
        """False when a run of this feed is already waiting (its queueing lock). The lock
        covers waiting jobs only: a tick that queues a feed whose job has just started is
        caught by `only_if_due`, checked under the feed's lease."""
        try:
            await self.app.configure_task(
                SYNC_FEED, lock=feed_id, queueing_lock=feed_id
            ).defer_async(
                feed_id=feed_id,
                run_id=run_id,
                parent_id=parent_id,
                trigger=trigger,
                only_if_due=only_if_due,
            )
        except AlreadyEnqueued:
            return False
        return True

    def for_fan_out(self, trigger: str) -> DeferConnection:
        async def defer(connection_id: str, run_id: str, parent_id: str) -> bool:
            return await self.connection(connection_id, run_id, parent_id, trigger=trigger)

        return defer

    def for_feed_fan_out(self, trigger: str, *, only_if_due: bool = False) -> DeferConnection:
        async def defer(feed_id: str, run_id: str, parent_id: str) -> bool:
            return await self.feed(
                feed_id, run_id, parent_id, trigger=trigger, only_if_due=only_if_due
            )

        return defer


def build_app(settings: Settings) -> App:
    app = App(
        connector=PsycopgConnector(conninfo=conninfo(settings.async_database_url)),
        worker_defaults={
            "concurrency": settings.worker_concurrency,
            "update_heartbeat_interval": settings.worker_heartbeat_seconds,
            "stalled_worker_timeout": settings.worker_stalled_seconds,
            "shutdown_graceful_timeout": settings.shutdown_grace_seconds,
        },
    )
    deferrer = Deferrer(app)
    retry = RetryStrategy(
        max_attempts=settings.worker_retry_attempts,
        exponential_wait=RETRY_BASE,
        retry_exceptions=queued_runs.TRANSIENT,
    )

    def engine_of(context: JobContext) -> SyncEngine:
        runtime: HasEngine = context.additional_context["runtime"]
        return runtime.engine

    def last_attempt(context: JobContext) -> bool:
        return context.job.attempts >= settings.worker_retry_attempts

    @app.task(name=SYNC_CONNECTION, retry=retry, pass_context=True)
    async def sync_connection(
        context: JobContext,
        connection_id: str,
        run_id: str,
        parent_id: str | None = None,
        trigger: str = "worker",
    ) -> None:
        await queued_runs.run_connection(
            engine_of(context),
            connection_id=connection_id,
            run_id=run_id,
            parent_id=parent_id,
            trigger=trigger,
            last_attempt=last_attempt(context),
        )

    @app.task(name=SYNC_FEED, retry=retry, pass_context=True)
    async def sync_feed(
        context: JobContext,
        feed_id: str,
        run_id: str,
        parent_id: str | None = None,
        trigger: str = "worker",
        only_if_due: bool = False,
    ) -> None:
        await queued_runs.run_feed(
            engine_of(context),
            feed_id=feed_id,
            run_id=run_id,
            parent_id=parent_id,
            trigger=trigger,
            last_attempt=last_attempt(context),
            only_if_due=only_if_due,
        )

    @app.task(name=SYNC_USER, retry=retry, pass_context=True)
    async def sync_user(context: JobContext, user_id: str, run_id: str, trigger: str) -> None:
        await queued_runs.run_user(
            engine_of(context),
            user_id=user_id,
            run_id=run_id,
            defer=deferrer.for_fan_out(trigger),
        )

    @app.task(name=SYNC_EVERYONE, retry=retry, pass_context=True)
    async def sync_everyone(context: JobContext, run_id: str, trigger: str) -> None:
        await queued_runs.run_everyone(
            engine_of(context),
            run_id=run_id,
            trigger=trigger,
            defer=deferrer.for_feed_fan_out(trigger),
        )

    @app.task(name=SYNC_LISTING, retry=retry, pass_context=True)
    async def sync_listing(context: JobContext, listing_id: str, run_id: str, trigger: str) -> None:
        await queued_runs.run_listing(
            engine_of(context),
            listing_id=listing_id,
            run_id=run_id,
            trigger=trigger,
            last_attempt=last_attempt(context),
        )

    @app.periodic(cron=procrastinate_cron(settings.schedule_cron), periodic_id="drain")
    @app.task(name=DRAIN_UNPUBLISH, queueing_lock=DRAIN_UNPUBLISH, retry=retry, pass_context=True)
    async def drain_unpublish(context: JobContext, timestamp: int | None = None) -> None:
        await queued_runs.drain_unpublish(engine_of(context))

    @app.periodic(cron=procrastinate_cron(settings.schedule_cron), periodic_id="schedule")
    @app.task(name=SCHEDULE_SYNCS, queueing_lock=SCHEDULE_SYNCS, pass_context=True)
    async def schedule_syncs(context: JobContext, timestamp: int) -> None:
        await queued_runs.run_everyone(
            engine_of(context),
            run_id=None,
            trigger="schedule",
            defer=deferrer.for_feed_fan_out("schedule", only_if_due=True),
            due_only=True,
        )

    @app.periodic(
        cron=procrastinate_cron(settings.worker_stalled_check_cron), periodic_id="stalled"
    )
    @app.task(name=RETRY_STALLED_JOBS, queueing_lock=RETRY_STALLED_JOBS)
    async def retry_stalled_jobs(timestamp: int) -> None:
        stalled = await app.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=settings.worker_stalled_seconds
        )
        for job in stalled:
            queued_runs.log.warning(
                "retrying a job whose worker stopped", job_id=job.id, task=job.task_name
            )
            await app.job_manager.retry_job(job)

    return app


def task_names(app: App) -> list[str]:
    """Our tasks (procrastinate registers builtins of its own under two names each)."""
    return sorted(name for name in app.tasks if not name.startswith(("builtin:", "procrastinate.")))
