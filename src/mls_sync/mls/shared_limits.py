"""Request budgets shared by every process on one PostgreSQL: a GCRA row per budget window.

Ten workers on five machines must together stay within one MLS credential's limits (MLS Grid
suspends a token that goes over), so the budget cannot live in a process. Each window of a
credential's budget (per second, per hour, per day, and a pause set by 429s and quota headers)
is a `rate_buckets` row holding GCRA's theoretical arrival time (TAT, epoch seconds). Taking a
slot is one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` over all of the credential's rows:
PostgreSQL serialises takers on the row locks, each taker reserves the next slot of every
window and gets back when it may send, then sleeps until then. The database's clock is the
only clock, so machines with skewed clocks still share one schedule.

Windows (`T` = the spacing GCRA enforces, `tau` = the burst it tolerates):
- per second: `T = 1/rate`, no burst, exactly like the in-process limiter;
- per hour and per day: `T = 2 * window / limit`, `tau = window - T`: a burst of up to half
  the limit, then half the rate, which keeps every window of that length at or under the
  limit (GCRA admits at most `1 + (window + tau) / T` requests in any such window).
A window that would make the taker wait longer than `max_wait` refuses (MlsBudgetExhausted)
and is left untouched; the slots already reserved in the other windows of that statement are
spent, which errs on the safe side.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from mls_sync.mls.errors import MlsBudgetExhausted
from mls_sync.mls.limits import DAY, HOUR, RateBudgets, quota_from_headers
from mls_sync.store.interface import RateBuckets

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Window:
    name: str  # "second", "hour", "day", or "minute" for the pause (as MlsBudgetExhausted says)
    key: str  # the rate_buckets row
    interval: float  # T
    tolerance: float  # tau


def windows(
    key: str, *, per_second: float, per_hour: int | None, per_day: int | None
) -> list[Window]:
    found = [Window("second", f"{key}:second", 1.0 / per_second, 0.0)]
    for name, seconds, limit in (("hour", HOUR, per_hour), ("day", DAY, per_day)):
        if limit is not None:
            interval = 2 * seconds / limit
            found.append(Window(name, f"{key}:{name}", interval, max(seconds - interval, 0.0)))
    # The pause is a window with no spacing: its TAT is simply "not before".
    found.append(Window("minute", f"{key}:pause", 0.0, 0.0))
    return found


class SharedRequestBudget:
    """One credential's budget, shared through PostgreSQL; the same interface as
    mls.limits.RequestBudget."""

    def __init__(
        self,
        buckets: RateBuckets,
        key: str,
        *,
        per_second: float,
        per_hour: int | None = None,
        per_day: int | None = None,
        max_wait: float = 30.0,
    ) -> None:
        self._buckets = buckets
        self._key = key
        self._per_second = per_second
        self._per_hour = per_hour
        self._per_day = per_day
        self._max_wait = max_wait
        self._windows = self._build_windows()
        self._paused_until = 0.0  # this process's copy of a pause, so it applies at once
        self._writes: set[asyncio.Task[None]] = set()

    def _build_windows(self) -> list[Window]:
        return windows(
            self._key, per_second=self._per_second, per_hour=self._per_hour, per_day=self._per_day
        )

    async def acquire(self) -> None:
        local = self._paused_until - time.monotonic()
        if local > self._max_wait:
            raise MlsBudgetExhausted("minute")
        if local > 0:
            await asyncio.sleep(local)
        taken, now = await self._buckets.take(
            [(w.key, w.interval, w.tolerance) for w in self._windows], max_wait=self._max_wait
        )
        refused = [w for w in self._windows if w.key not in taken]
        if refused:
            raise MlsBudgetExhausted(refused[0].name)
        send_at = max(taken[w.key] - w.interval - w.tolerance for w in self._windows)
        if send_at > now:
            await asyncio.sleep(send_at - now)

    def pause(self, seconds: float) -> None:
        """Pause here at once, and for everyone through the pause row (written in the
        background: the transport calls this without awaiting)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        task = asyncio.get_running_loop().create_task(self._write_pause(seconds))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def settled(self) -> None:
        """Wait until pauses announced so far are in the database (shutdown, tests)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _write_pause(self, seconds: float) -> None:
        try:
            await self._buckets.pause(f"{self._key}:pause", seconds)
        except Exception:  # the local pause still holds; others learn from their own 429
            log.warning("could not share an MLS budget pause", budget=self._key)

    def observe(self, headers: Mapping[str, str]) -> None:
        hour_limit, pause = quota_from_headers(headers)
        if hour_limit is not None and (self._per_hour is None or hour_limit < self._per_hour):
            self._per_hour = hour_limit
            self._windows = self._build_windows()
        if pause is not None:
            self.pause(pause)


class SharedRateBudgets(RateBudgets):
    """One SharedRequestBudget per credential (or host); the same key as mls.limits.RateBudgets,
    so a connection draws on the same budget whichever implementation a process runs."""

    def __init__(
        self,
        buckets: RateBuckets,
        requests_per_second: float,
        *,
        requests_per_hour: int | None = None,
        requests_per_day: int | None = None,
        max_wait: float = 30.0,
    ) -> None:
        super().__init__(
            requests_per_second,
            requests_per_hour=requests_per_hour,
            requests_per_day=requests_per_day,
            max_wait=max_wait,
        )
        self._buckets = buckets

    def _new_budget(
        self, key: str, *, per_second: float, per_hour: int | None, per_day: int | None
    ) -> SharedRequestBudget:
        return SharedRequestBudget(
            self._buckets,
            f"mls:{key}",
            per_second=per_second,
            per_hour=per_hour,
            per_day=per_day,
            max_wait=self._max_wait,
        )
