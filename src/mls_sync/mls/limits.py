"""Request budgets per MLS credential.

MLS Grid suspends a token that exceeds its published limits instead of answering 429 first, so
the client paces itself: every connection that uses the same credential draws on one budget,
and different credentials never slow each other down.
"""

from __future__ import annotations

import hashlib

from aiolimiter import AsyncLimiter


class RateBudgets:
    def __init__(self, requests_per_second: float) -> None:
        self._rate = requests_per_second
        self._limiters: dict[str, AsyncLimiter] = {}

    def for_credential(self, base_url: str, credential: str) -> AsyncLimiter:
        key = budget_key(base_url, credential)
        limiter = self._limiters.get(key)
        if limiter is None:
            # A one-second window with max_rate = rate allows no burst above the published
            # per-second figure (a token bucket the size of one second's budget).
            max_rate = max(self._rate, 1.0)
            limiter = AsyncLimiter(max_rate=max_rate, time_period=max_rate / self._rate)
            self._limiters[key] = limiter
        return limiter


def budget_key(base_url: str, credential: str) -> str:
    """A stable key that never reveals the credential (logs and metrics may show it)."""
    digest = hashlib.sha256(f"{base_url}\0{credential}".encode()).hexdigest()
    return digest[:16]
