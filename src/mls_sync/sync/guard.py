"""At most one sync of a connection at a time: whoever finds it taken skips it and says so.

The scheduler, the cron endpoint, the CLI, the user routes and other processes (a second
`serve`, a crontab `sync all`, workers on other machines) may all ask for the same connection
at once; a second concurrent sync would spend the MLS budget twice for nothing.
`ConnectionGuard` is the seam: `LocalGuard` serves one process (unit tests), `LeaseGuard` holds
a lease row per connection in the database (store/leases.py), renewed while its holder works
and taken over once it lapses because its holder died. The runtime wires `LeaseGuard`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from mls_sync.domain.errors import Conflict
from mls_sync.store.interface import Storage
from mls_sync.store.types import utcnow

log = structlog.get_logger(__name__)

SYNC_IN_PROGRESS = "A sync of this MLS connection is already in progress"


class SyncInProgressError(Conflict):
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


async def acquire_many(guard: ConnectionGuard, connection_ids: Sequence[str]) -> set[str]:
    """Claim every free connection of `connection_ids` at once where the guard can (a lease
    guard does it in one transaction), else one after the other."""
    batch = getattr(guard, "try_acquire_many", None)
    if batch is not None:
        taken: set[str] = await batch(connection_ids)
        return taken
    return {cid for cid in connection_ids if await guard.try_acquire(cid)}


async def release_many(guard: ConnectionGuard, connection_ids: Sequence[str]) -> None:
    """Give many connections back at once where the guard can (one transaction)."""
    batch = getattr(guard, "release_many", None)
    if batch is not None:
        await batch(connection_ids)
        return
    for connection_id in connection_ids:
        await guard.release(connection_id)


class LeaseGuard:
    """One sync per connection across processes and machines: a lease row per connection.

    Connections this guard holds are also kept in a local map, so a second claim from this
    process is refused without a round trip. One renewal task per event loop renews every lease
    held on that loop in a single transaction every `renew_every` (a cron run holding a
    thousand connections costs one renewal transaction per interval, not a thousand); a holder
    that dies stops renewing, and once `ttl` has passed the next claim takes the lease over.
    The holder id names this host, process and guard (unique per runtime), so a renewal or
    release never touches someone else's lease.
    """

    def __init__(
        self,
        db: Storage,
        *,
        ttl: timedelta = timedelta(seconds=60),
        renew_every: timedelta = timedelta(seconds=20),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if renew_every >= ttl:
            raise ValueError("a lease must be renewed more often than it expires")
        self._db = db
        self._ttl = ttl
        self._renew_every = renew_every
        self._clock = clock
        self.holder = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        # connection id -> the loop that holds it (None while the database is being asked)
        self._held: dict[str, asyncio.AbstractEventLoop | None] = {}
        self._lost: set[str] = set()  # held here, but taken over after this process stalled
        # Leases taken over from a holder that died (id -> its holder id), until asked.
        self._taken_over: dict[str, str] = {}
        self._renewers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        self._lock = threading.Lock()

    async def try_acquire(self, connection_id: str) -> bool:
        return connection_id in await self.try_acquire_many([connection_id])

    async def try_acquire_many(self, connection_ids: Sequence[str]) -> set[str]:
        """Take every free connection of `connection_ids` in one transaction, in id order: a
        run that arrives while another claims waits for that claim to commit and then finds
        the connections taken, rather than splitting them with it."""
        with self._lock:
            wanted = sorted(set(connection_ids) - set(self._held))
            for connection_id in wanted:
                self._held[connection_id] = None  # claimed locally while the database is asked
        try:
            async with self._db.transaction() as session:
                # Two statements for any number of connections on SQL (a cron run of 1,000
                # private feeds paid two for each).
                took = await session.leases.take_many(
                    wanted, self.holder, now=self._clock(), ttl=self._ttl
                )
        except BaseException:
            with self._lock:
                for connection_id in wanted:
                    self._held.pop(connection_id, None)
            raise
        taken = set(took)
        # A lapsed lease of someone else's: its holder died.
        dead = {cid: by for cid, by in took.items() if by is not None}
        loop = asyncio.get_running_loop()
        with self._lock:
            self._taken_over.update(dead)
            for connection_id in wanted:
                if connection_id in taken:
                    self._held[connection_id] = loop
                else:
                    self._held.pop(connection_id, None)
            renewer = self._renewers.get(loop)
            if taken and (renewer is None or renewer.done()):
                self._renewers[loop] = loop.create_task(self._renew(loop), name="lease-renewal")
        return taken

    async def release(self, connection_id: str) -> None:
        await self.release_many([connection_id])

    async def release_many(self, connection_ids: Sequence[str]) -> None:
        """Give back every one of `connection_ids` this guard holds, in one transaction."""
        renewers = []
        with self._lock:
            mine = [cid for cid in dict.fromkeys(connection_ids) if cid in self._held]
            loops = {self._held.pop(cid) for cid in mine}
            self._lost.difference_update(mine)
            for loop in loops:
                if loop is not None and loop not in self._held.values() and loop in self._renewers:
                    renewers.append(self._renewers.pop(loop))
        for renewer in renewers:
            renewer.cancel()  # nothing left to renew on that loop
        if mine:
            # Shielded: a release during cancellation (shutdown) still gives the leases back,
            # so nobody waits out the TTL for a connection nobody syncs.
            await asyncio.shield(self._release_rows(mine))

    async def _release_rows(self, connection_ids: Sequence[str]) -> None:
        async with self._db.transaction() as session:
            await session.leases.release_many(connection_ids, self.holder)

    def held(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._held)

    def taken_over_from(self, connection_id: str) -> str | None:
        """The holder whose lapsed lease this guard took over for `connection_id` (once)."""
        with self._lock:
            return self._taken_over.pop(connection_id, None)

    async def _renew(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            await asyncio.sleep(self._renew_every.total_seconds())
            with self._lock:
                due = sorted(
                    cid for cid, on in self._held.items() if on is loop and cid not in self._lost
                )
            if not due:
                continue
            try:
                async with self._db.transaction() as session:
                    now = self._clock()
                    lost = [
                        cid
                        for cid in due
                        if not await session.leases.renew(cid, self.holder, now=now, ttl=self._ttl)
                    ]
            except Exception:  # a database hiccup: try again next time, the TTL has slack
                log.warning("connection lease renewal failed", connections=len(due))
                continue
            for connection_id in lost:
                # Only when this process stalled longer than the TTL: someone else took it.
                log.error("connection lease lost to another holder", connection_id=connection_id)
            with self._lock:
                self._lost.update(lost)


@asynccontextmanager
async def hold(guard: ConnectionGuard, connection_id: str) -> AsyncIterator[bool]:
    """`async with hold(guard, id) as held:`; released on the way out, cancellation included."""
    held = await guard.try_acquire(connection_id)
    try:
        yield held
    finally:
        if held:
            await guard.release(connection_id)
