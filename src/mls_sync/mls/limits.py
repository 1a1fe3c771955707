"""Request budgets per MLS credential: per second, per hour and per day.

MLS Grid suspends a token that exceeds its published limits instead of answering 429 first, so
the client paces itself: every connection that uses the same credential draws on one budget
(or, where a profile says so, every credential on the same host), and different credentials
never slow each other down. Vendor quota headers and 429s tighten the budget further.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import deque
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Protocol
from urllib.parse import urlsplit

from aiolimiter import AsyncLimiter

from mls_sync.mls.errors import MlsBudgetExhausted
from mls_sync.mls.profiles import VendorProfile

HOUR = 3600.0
DAY = 86400.0


class Budget(Protocol):
    """One credential's request budget, as the transport uses it: in this process
    (RequestBudget) or shared by every process through PostgreSQL (mls/shared_limits.py)."""

    async def acquire(self) -> None:
        """Wait for a slot; raises MlsBudgetExhausted when the wait would be too long."""
        ...

    def pause(self, seconds: float) -> None:
        """Nobody on this credential sends anything for `seconds`."""
        ...

    def observe(self, headers: Mapping[str, str]) -> None:
        """Tighten the budget from the vendor's quota headers."""
        ...


class Budgets(Protocol):
    def for_connection(self, profile: VendorProfile, base_url: str, credential_id: str) -> Budget:
        """The budget of the connection's credential (or host), one per key."""
        ...


class _Window:
    """At most `limit` requests in any `seconds`-long sliding window."""

    def __init__(self, name: str, seconds: float, limit: int) -> None:
        self.name = name
        self.seconds = seconds
        self.limit = limit
        self.sent: deque[float] = deque()

    def wait(self, now: float) -> float:
        while self.sent and self.sent[0] <= now - self.seconds:
            self.sent.popleft()
        if len(self.sent) < self.limit:
            return 0.0
        return self.sent[len(self.sent) - self.limit] + self.seconds - now


class RequestBudget:
    def __init__(
        self,
        *,
        per_second: float,
        per_hour: int | None = None,
        per_day: int | None = None,
        max_wait: float = 30.0,
    ) -> None:
        # One request every 1/rate seconds, no burst: a bucket of one, so no one-second window
        # ever holds more than `per_second` requests (a larger bucket would allow a burst on
        # top of the steady rate, which is exactly what gets an MLS Grid token suspended).
        self._per_second = per_second
        self._second = AsyncLimiter(1, 1.0 / per_second)
        self._windows = [
            _Window(name, seconds, limit)
            for name, seconds, limit in (("hour", HOUR, per_hour), ("day", DAY, per_day))
            if limit is not None
        ]
        self._paused_until = 0.0
        self._max_wait = max_wait
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for a slot; raises MlsBudgetExhausted when the wait would exceed `max_wait`
        (an hourly budget spent at minute 5 is not worth holding a run for 55 minutes). The
        whole wait is capped, queueing behind other requests included: `max_wait` plus two
        intervals of the rate (and a tenth of a second for the event loop), so no rate and
        no queue can hold a run for ever."""
        try:
            async with asyncio.timeout(self._max_wait + 2.0 / self._per_second + 0.1):
                await self._acquire()
        except TimeoutError:
            raise MlsBudgetExhausted("second") from None

    async def _acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            waits = [(self._paused_until - now, "minute")]
            waits += [(w.wait(now), w.name) for w in self._windows]
            wait, window = max(waits)
            if wait > self._max_wait:
                raise MlsBudgetExhausted(window)
            if wait > 0:
                await asyncio.sleep(wait)
            await self._second.acquire()
            sent = time.monotonic()
            for w in self._windows:
                w.sent.append(sent)

    def pause(self, seconds: float) -> None:
        """Nobody on this credential sends anything for `seconds` (a 429's Retry-After, an
        exhausted vendor quota)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read the vendor's quota headers: lower our limits to what the vendor announces and
        pause when it says nothing is left."""
        hour_limit, pause = quota_from_headers(headers)
        if hour_limit is not None:
            self._tighten("hour", HOUR, hour_limit)
        if pause is not None:
            self.pause(pause)

    def _tighten(self, name: str, seconds: float, limit: int) -> None:
        for w in self._windows:
            if w.name == name:
                w.limit = min(w.limit, limit)
                return
        self._windows.append(_Window(name, seconds, limit))


class RateBudgets:
    """One RequestBudget per credential (or per host), created on first use."""

    def __init__(
        self,
        requests_per_second: float,
        *,
        requests_per_hour: int | None = None,
        requests_per_day: int | None = None,
        max_wait: float = 30.0,
    ) -> None:
        self._rate = requests_per_second
        self._per_hour = requests_per_hour
        self._per_day = requests_per_day
        self._max_wait = max_wait
        self._budgets: dict[str, Budget] = {}

    def for_connection(self, profile: VendorProfile, base_url: str, credential_id: str) -> Budget:
        key = connection_budget_key(profile, base_url, credential_id)
        budget = self._budgets.get(key)
        if budget is None:
            # The stricter of the profile's published figures and our configured defaults.
            budget = self._new_budget(
                key,
                per_second=min(profile.requests_per_second, self._rate),
                per_hour=_min(profile.requests_per_hour, self._per_hour),
                per_day=_min(profile.requests_per_day, self._per_day),
            )
            self._budgets[key] = budget
        return budget

    def _new_budget(
        self, key: str, *, per_second: float, per_hour: int | None, per_day: int | None
    ) -> Budget:
        """This process's own budget; mls/shared_limits.py returns one shared by processes."""
        return RequestBudget(
            per_second=per_second, per_hour=per_hour, per_day=per_day, max_wait=self._max_wait
        )


def connection_budget_key(profile: VendorProfile, base_url: str, credential_id: str) -> str:
    """Connections with the same key share one budget: the credential's, or the host's where
    the profile says `budget_per="host"`."""
    scope = urlsplit(base_url).netloc if profile.budget_per == "host" else credential_id
    return budget_key(profile.name, scope)


# The longest pause a vendor's headers can impose on a credential here (a reset an hour or a
# century away both mean "not now"; the next run asks again).
MAX_PAUSE_SECONDS = 3600.0


def budget_key(base_url: str, credential: str) -> str:
    """A stable key that never reveals the credential (logs and metrics may show it)."""
    digest = hashlib.sha256(f"{base_url}\0{credential}".encode()).hexdigest()
    return digest[:16]


def quota_from_headers(headers: Mapping[str, str]) -> tuple[int | None, float | None]:
    """(hourly limit the vendor announces, seconds to pause) from quota headers: Trestle's
    `Hour-Quota-Limit`; Bridge's hourly `Application-RateLimit-Limit`, and either family's
    `-Remaining: 0` (hourly or per-minute burst) until its `-Reset`, and Trestle's
    `-Available: 0` until its `-ResetTime`."""
    hour_limits = [
        _number(headers.get(name)) for name in ("hour-quota-limit", "application-ratelimit-limit")
    ]
    pauses = [
        _exhausted(headers, family, left, reset, default)
        for family, left, reset, default in QUOTA_FAMILIES
    ]
    announced = [int(v) for v in hour_limits if v is not None and v >= 1]
    waits = [p for p in pauses if p is not None]
    limit = min(announced) if announced else None
    return limit, min(max(waits), MAX_PAUSE_SECONDS) if waits else None


# (header family, its "what is left" suffix, its "when it renews" suffix, the window): Bridge's
# per-minute burst and hourly application limits (bridgeinteractive.com, 2024), Trestle's
# minute and hour quotas (trestle-documentation.corelogic.com/webapi-at-scale.html:
# `Hour-Quota-Available`, `Hour-Quota-ResetTime`).
QUOTA_FAMILIES = (
    ("burst-ratelimit", "remaining", "reset", 60.0),
    ("application-ratelimit", "remaining", "reset", HOUR),
    ("minute-quota", "available", "resettime", 60.0),
    ("hour-quota", "available", "resettime", HOUR),
)


def _exhausted(
    headers: Mapping[str, str], family: str, left: str, renews: str, default: float
) -> float | None:
    """Seconds until `family`'s quota renews, when what is left of it is nothing."""
    remaining = _number(headers.get(f"{family}-{left}"))
    if remaining is None or remaining > 0:
        return None
    reset = _number(headers.get(f"{family}-{renews}"))
    return _seconds_until(reset) if reset is not None else default


# The longest suspension a vendor's Retry-After can set (MLS Grid's daily limit resets within
# a day; anything longer is a number to distrust, and the next day's cycle asks again).
MAX_SUSPENSION_SECONDS = 86400.0


def retry_after_seconds(value: str | None, *, cap: float = MAX_PAUSE_SECONDS) -> float | None:
    """Retry-After as delta-seconds or an HTTP date (RFC 9110 10.2.3), at most `cap`."""
    if value is None:
        return None
    number = _number(value)
    if number is not None:
        return min(max(number, 0.0), cap)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(moment.timestamp() - time.time(), 0.0), cap)


def _seconds_until(reset: float) -> float:
    # Reset headers come as seconds-to-wait or as an epoch (seconds or milliseconds).
    if reset > 1e12:
        reset /= 1000.0
    if reset > 1e9:
        return max(reset - time.time(), 0.0)
    return max(reset, 0.0)


def _number(value: str | None) -> float | None:
    """A header's number; None for anything else, `inf` and `nan` included (a hostile
    `Hour-Quota-Limit: inf` crashed the run in `int()`)."""
    if value is None or len(value) > 40:
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _min(a: int | None, b: int | None) -> int | None:
    values = [v for v in (a, b) if v is not None]
    return min(values) if values else None
