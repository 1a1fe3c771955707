"""Group commit: many concurrent writers, one transaction for whatever is waiting.

A cron cycle runs up to 64 feeds at once, and most finish within a few milliseconds of each
other (an idle feed's run is one request). Each used to close its run in a transaction of
its own and release its lease in another: two commits per feed, most of an idle run's CPU.
Here the first writer to arrive writes its item; the items that arrive while that write is
in flight wait and go together in the next one. No write waits for a timer, a lone writer
pays what it paid before, and a crowd pays one transaction per wave.

`submit` returns once its item is committed, so a caller still knows its record is written
when it goes on. A batch that fails is written again one item at a time, so one bad item
fails only its own writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """`await submit(item)`: written by `write(items)` with the others waiting then; `write`
    answers one result per item, in order, which `submit` returns. One per event loop and
    unit of work (a cron cycle), never shared across loops."""

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[Sequence[R]]]) -> None:
        self._write = write
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # writes made: how well the items grouped (tests, debugging)

    async def submit(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None:
            # A task of its own: a writer cancelled while it waits does not cancel a write
            # that carries the others' items too.
            self._writer = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._write_batch(batch)
        except BaseException as exc:  # cancelled (shutdown): nobody may wait forever
            for _, done in batch + self._waiting:
                if not done.done():
                    done.set_exception(exc)
            self._waiting = []
            raise
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        try:
            results = await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            for one in batch:
                await self._write_batch([one])
            return
        for (_, done), result in zip(batch, results, strict=True):
            if not done.done():
                done.set_result(result)
