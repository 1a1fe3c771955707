"""The embedded scheduler of `mls-sync serve`: on a cron schedule, run every active MLS feed
whose own cadence has come (default 15 minutes; a feed may run as often as every minute, with
the schedule ticking as often).

APScheduler 3 (`AsyncIOScheduler`) runs one job on the server's event loop with
`max_instances=1` and `coalesce=True`: a tick that comes while a run is still going is skipped
(APScheduler reports EVENT_JOB_MAX_INSTANCES, which is logged), and ticks missed while the loop
was busy collapse into one, so an overrunning run never piles up work behind it.

Stopping (SIGTERM reaches us through uvicorn's lifespan shutdown) first pauses the schedule,
then gives the running sync `grace_seconds` to finish, then cancels it. Cancelling is safe:
every status change commits in its own transaction together with its unpublish jobs (the
outbox), so an abandoned run loses nothing; the next run reads the MLS again and drains the
jobs that are left.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from mls_sync import actions
from mls_sync.domain.results import AggregatedResult, SyncActionResponse
from mls_sync.store.types import utcnow
from mls_sync.sync.engine import SyncEngine

log = structlog.get_logger(__name__)

JOB_ID = "sync-all-connections"
SyncJob = Callable[[], Awaitable[SyncActionResponse[AggregatedResult]]]


@dataclass(frozen=True)
class ScheduledRun:
    started_at: datetime
    finished_at: datetime
    success: bool
    message: str


class SyncScheduler:
    """Runs `job` (by default: sync every user's active connections) on `trigger`."""

    def __init__(
        self,
        engine: SyncEngine,
        *,
        trigger: BaseTrigger,
        grace_seconds: float = 30.0,
        job: SyncJob | None = None,
    ) -> None:
        self._trigger = trigger
        self._grace = grace_seconds
        self._job: SyncJob = job or (
            lambda: actions.sync_all_users(engine=engine, trigger="schedule", due_only=True)
        )
        self._scheduler: AsyncIOScheduler | None = None
        self._current: asyncio.Task[SyncActionResponse[AggregatedResult]] | None = None
        # What happened lately, for tests and for anyone looking at a running process.
        self.runs: deque[ScheduledRun] = deque(maxlen=100)
        self.skipped_ticks = 0

    @property
    def running(self) -> bool:
        return self._scheduler is not None and self._scheduler.running

    def start(self) -> None:
        """Start on the running event loop."""
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop())
        scheduler.add_job(
            self._tick,
            self._trigger,
            id=JOB_ID,
            name="sync every active MLS connection",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,  # late is better than never; coalescing keeps it to once
        )
        scheduler.add_listener(
            self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR
        )
        scheduler.start()
        self._scheduler = scheduler
        job = scheduler.get_job(JOB_ID)
        log.info(
            "scheduler started",
            schedule=str(self._trigger),
            next_run_at=job.next_run_time.isoformat() if job and job.next_run_time else None,
        )

    async def stop(self) -> None:
        """No new runs; let the current one finish within the grace period, else cancel it."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None:
            return
        scheduler.pause()
        await asyncio.sleep(0)  # a tick submitted just before the pause starts and is waited for
        current = self._current
        if current is not None and not current.done():
            log.info("waiting for the running sync to finish", grace_seconds=self._grace)
            done, _ = await asyncio.wait({current}, timeout=self._grace)
            if not done:
                log.warning(
                    "abandoning the running sync: committed changes and queued unpublish "
                    "jobs stay, the next run picks up the rest"
                )
                current.cancel()
                await asyncio.gather(current, return_exceptions=True)
        scheduler.shutdown(wait=False)
        log.info("scheduler stopped")

    async def _tick(self) -> None:
        started = utcnow()
        # The run is a task of its own, shielded: APScheduler cancels its jobs on shutdown,
        # and `stop` decides instead whether the run finishes or is abandoned.
        run = self._current = asyncio.ensure_future(self._job())
        try:
            response = await asyncio.shield(run)
        except asyncio.CancelledError:
            this = asyncio.current_task()
            if run.cancelled() and (this is None or this.cancelling() == 0):
                # `stop` gave up on the run: an ending, not a failure of the job.
                log.warning("scheduled sync abandoned", started_at=started.isoformat())
                return
            raise
        self.runs.append(ScheduledRun(started, utcnow(), response.success, response.message))
        log.info("scheduled sync finished", success=response.success, summary=response.message)

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.skipped_ticks += 1
            log.warning(
                "scheduled sync skipped: the previous run is still going",
                skipped_ticks=self.skipped_ticks,
            )
        elif event.code == EVENT_JOB_MISSED:
            log.warning(
                "scheduled sync missed its time", scheduled_at=str(event.scheduled_run_time)
            )
        elif event.code == EVENT_JOB_ERROR:
            log.error("scheduled sync failed", error=repr(getattr(event, "exception", None)))
