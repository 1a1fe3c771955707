"""Seeded random faults for the sandbox servers: 5xx answers, timeouts and bursts of 429s.

`fail_next` queues known faults for a scenario; `Chaos` is the weather: every request draws
from one seeded random generator, so a test states rates ("10% 5xx, 5% timeouts, 429 bursts")
and the sync has to converge anyway. A burst, once it starts for a key (a token, a platform),
answers that key's next `burst_length` requests with 429 and `Retry-After`.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class ChaosFault(StrEnum):
    SERVER_ERROR = "server_error"  # a 5xx answer
    TIMEOUT = "timeout"  # the answer comes after `timeout_seconds` (longer than the client waits)
    RATE_LIMITED = "rate_limited"  # 429 with Retry-After, as part of a burst


@dataclass
class Chaos:
    """Fault rates per request; `seed` makes the sequence of draws repeatable."""

    seed: int = 0
    server_errors: float = 0.10
    timeouts: float = 0.05
    bursts: float = 0.01  # chance that a request starts a burst of 429s
    burst_length: int = 2
    timeout_seconds: float = 1.0
    retry_after_seconds: int = 1
    injected: Counter[ChaosFault] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.server_errors + self.timeouts + self.bursts > 1:
            raise ValueError("fault rates add up to more than 1")
        self._random = random.Random(self.seed)
        self._burst_left: dict[str, int] = {}
        self._lock = threading.Lock()

    def draw(self, key: str = "") -> ChaosFault | None:
        """The fault for this request of `key`, or None for a normal answer."""
        with self._lock:
            fault = self._draw(key)
            if fault is not None:
                self.injected[fault] += 1
            return fault

    def _draw(self, key: str) -> ChaosFault | None:
        left = self._burst_left.get(key, 0)
        if left > 0:
            self._burst_left[key] = left - 1
            return ChaosFault.RATE_LIMITED
        roll = self._random.random()
        if roll < self.server_errors:
            return ChaosFault.SERVER_ERROR
        if roll < self.server_errors + self.timeouts:
            return ChaosFault.TIMEOUT
        if roll < self.server_errors + self.timeouts + self.bursts:
            self._burst_left[key] = self.burst_length - 1
            return ChaosFault.RATE_LIMITED
        return None


__all__ = ["Chaos", "ChaosFault"]
