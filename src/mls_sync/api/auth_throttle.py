"""Failed sign-ins per client address: after too many in a minute, that address is answered
429 with `Retry-After` until the oldest failure leaves the window, whatever it sends.

Every secret the API takes (users' API keys, the cron secret, the operator's admin key, the
metrics token, the dashboard's sign-in form) counts against the same address, so guessing one
cannot be spread over the others. While an address is throttled even a right key is answered
429: an answer that differed would tell the guesser it had found one.

Hand-written rather than a rate-limit library's: those count every request, and here only
refusals count (a busy, well-behaved client must never be slowed). The count is per process:
with several `serve` processes each keeps its own, which bounds a guesser to (processes x
limit) a minute. The address is the connecting one; behind a reverse proxy, uvicorn's
`--forwarded-allow-ips` (FORWARDED_ALLOW_IPS) decides whether `X-Forwarded-For` is believed.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from fastapi import HTTPException, Request, status

WINDOW_SECONDS = 60.0
# Addresses remembered at most (the oldest forgotten first): an attacker with many addresses
# cannot grow this without bound, only push its own earlier failures out.
MAX_ADDRESSES = 10_000
TOO_MANY = "Too many failed sign-ins from this address: try again later"


class AuthThrottle:
    """Refusals per client address in a sliding window of `window_seconds`."""

    def __init__(
        self,
        *,
        limit: int,
        window_seconds: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._max = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    def retry_after(self, address: str) -> float | None:
        """Seconds until `address` may try again, or None when it may now."""
        if not self.enabled:
            return None
        failures = self._recent(address)
        if failures is None or len(failures) < self._limit:
            return None
        return failures[0] + self._window - self._clock()

    def refused(self, address: str) -> None:
        """Count one refusal of `address`."""
        if not self.enabled:
            return
        failures = self._recent(address)
        if failures is None:
            failures = self._failures[address] = deque(maxlen=self._limit)
            while len(self._failures) > self._max:
                self._failures.popitem(last=False)
        failures.append(self._clock())
        self._failures.move_to_end(address)

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        oldest_kept = self._clock() - self._window
        while failures and failures[0] <= oldest_kept:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def throttle_of(request: Request) -> AuthThrottle:
    throttle: AuthThrottle = request.app.state.auth_throttle
    return throttle


def too_many(seconds: float) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        TOO_MANY,
        headers={"Retry-After": str(max(1, math.ceil(seconds)))},
    )


def check_not_throttled(request: Request) -> None:
    """429 when the caller's address has failed too often; call before checking a secret."""
    wait = throttle_of(request).retry_after(client_address(request))
    if wait is not None:
        raise too_many(wait)


def count_refusal(request: Request) -> None:
    throttle_of(request).refused(client_address(request))
