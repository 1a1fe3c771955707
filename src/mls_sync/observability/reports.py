"""What a finished run over every connection reports to whoever watches runs (metrics sinks).

Observers are callables, plain or async, registered on the engine (`engine.run_observers`)
by the composition root (the EMF writer, the alert monitor's whole-run rule); `sync/runs.py`
calls them once per cron-wide run, whatever started it (scheduler, cron endpoint, `mls-sync
sync all`, the Lambda handler). An observer that fails is logged and never fails the run: the
run's work is committed by then.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import structlog

from mls_sync.domain.results import AggregatedResult

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunReport:
    trigger: str
    success: bool
    message: str
    result: AggregatedResult
    started_at: datetime
    finished_at: datetime

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


RunObserver = Callable[[RunReport], Awaitable[object] | None]


async def notify(observers: Iterable[RunObserver], report: RunReport) -> None:
    for observe in observers:
        try:
            outcome = observe(report)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            log.exception("run observer failed", observer=repr(observe), trigger=report.trigger)
