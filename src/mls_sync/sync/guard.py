"""At most one sync of a connection at a time: whoever finds it taken skips it and says so.

The scheduler, the cron endpoint, the CLI and the user routes may all ask for the same
connection at once; a second concurrent sync would spend the MLS budget twice for nothing.
`ConnectionGuard` is the seam: `LocalGuard` serves one process; a database lease (a row per
connection with an expiry) can implement the same two methods for many processes later.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

SYNC_IN_PROGRESS = "A sync of this MLS connection is already in progress"


class SyncInProgressError(RuntimeError):
    """The connection is being synced by someone else right now."""

    def __init__(self) -> None:
        super().__init__(SYNC_IN_PROGRESS)


class ConnectionGuard(Protocol):
    async def try_acquire(self, connection_id: str) -> bool:
        """Take the connection for this caller; False (at once, never waiting) when taken."""
        ...

    async def release(self, connection_id: str) -> None:
        """Give the connection back; releasing one not held is a no-op."""
        ...


class LocalGuard:
    """In-process guard: a set of held connection ids.

    A threading lock, not an asyncio one: tests and the demo run apps on other threads' loops,
    and check-then-add must be atomic across them too.
    """

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._lock = threading.Lock()

    async def try_acquire(self, connection_id: str) -> bool:
        with self._lock:
            if connection_id in self._held:
                return False
            self._held.add(connection_id)
            return True

    async def release(self, connection_id: str) -> None:
        with self._lock:
            self._held.discard(connection_id)

    def held(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._held)


@asynccontextmanager
async def hold(guard: ConnectionGuard, connection_id: str) -> AsyncIterator[bool]:
    """`async with hold(guard, id) as held:`; released on the way out, cancellation included."""
    held = await guard.try_acquire(connection_id)
    try:
        yield held
    finally:
        if held:
            await guard.release(connection_id)
