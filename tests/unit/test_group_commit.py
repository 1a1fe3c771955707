"""Group commit: writers that arrive while a write is in flight go together in the next one;
each writer returns once its own item is written, with its own result or its own failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mls_sync.sync.group_commit import GroupCommit


class Store:
    """A write that takes a moment (the database's round trip) and records its batches."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.refuse = refuse
        self.gate = asyncio.Event()
        self.gate.set()

    async def write(self, items: Sequence[str]) -> list[str]:
        await self.gate.wait()
        await asyncio.sleep(0)
        if self.refuse & set(items):
            raise ValueError(f"refused {sorted(self.refuse & set(items))}")
        self.batches.append(list(items))
        return [item.upper() for item in items]


async def test_writers_that_arrive_during_a_write_share_the_next_one() -> None:
    store = Store()
    store.gate.clear()  # the first write is in flight until the gate opens
    commit = GroupCommit(store.write)
    first = asyncio.create_task(commit.submit("f0"))
    await asyncio.sleep(0.01)
    later = [asyncio.create_task(commit.submit(f"f{n}")) for n in range(1, 10)]
    await asyncio.sleep(0.01)
    store.gate.set()
    results = await asyncio.gather(first, *later)
    assert results == [f"F{n}" for n in range(10)]  # each writer gets its own result
    # The first writer writes alone; the nine that came meanwhile go in one more write.
    assert store.batches == [["f0"], [f"f{n}" for n in range(1, 10)]]
    assert commit.batches == 2


async def test_writers_of_one_moment_are_written_together() -> None:
    store = Store()
    commit = GroupCommit(store.write)
    assert await asyncio.gather(*(commit.submit(f"f{n}") for n in range(5))) == [
        f"F{n}" for n in range(5)
    ]
    assert store.batches == [[f"f{n}" for n in range(5)]]


async def test_a_lone_writer_is_written_at_once() -> None:
    store = Store()
    commit = GroupCommit(store.write)
    assert await commit.submit("a") == "A"
    assert await commit.submit("b") == "B"
    assert store.batches == [["a"], ["b"]]


async def test_a_batch_that_fails_is_written_again_one_by_one_so_only_the_bad_item_fails() -> None:
    store = Store(refuse=frozenset({"f3"}))
    commit = GroupCommit(store.write)
    results = await asyncio.gather(
        *(commit.submit(f"f{n}") for n in range(5)), return_exceptions=True
    )
    assert results[:3] == ["F0", "F1", "F2"] and results[4] == "F4"
    assert isinstance(results[3], ValueError)
    assert sorted(item for batch in store.batches for item in batch) == ["f0", "f1", "f2", "f4"]


async def test_a_writer_cancelled_while_waiting_leaves_the_others_batch_alone() -> None:
    store = Store()
    store.gate.clear()  # the first write hangs until released
    commit = GroupCommit(store.write)
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0)
    second = asyncio.create_task(commit.submit("b"))
    third = asyncio.create_task(commit.submit("c"))
    await asyncio.sleep(0)
    first.cancel()  # its write goes on: it carries nobody else's item, but it is not undone
    third.cancel()
    store.gate.set()
    assert await second == "B"
    with pytest.raises(asyncio.CancelledError):
        await first
    # Every item was written, the cancelled writers' included: cancelling a wait is not
    # taking back a record.
    assert store.batches == [["a"], ["b", "c"]]
