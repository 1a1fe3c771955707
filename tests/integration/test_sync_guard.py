"""One sync per connection at a time: the in-process guard, and runs over many connections
that claim before they start and give every claim back, even when cancelled."""

from __future__ import annotations

import asyncio

from factories import seed_connection, seed_user
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sync import runs
from mls_sync.sync.guard import LocalGuard, hold
from polling import eventually


async def test_a_held_connection_cannot_be_taken_until_it_is_released() -> None:
    guard = LocalGuard()

    async with hold(guard, "c1") as first:
        async with hold(guard, "c1") as second:
            assert (first, second) == (True, False)
        assert guard.held() == {"c1"}  # the one that did not get it released nothing
    assert guard.held() == frozenset()
    assert await guard.try_acquire("c1")


async def test_a_cancelled_run_gives_back_every_connection_it_claimed(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id = await seed_user(runtime)
    ids = [
        (
            await seed_connection(runtime, reso, reso_url, {f"K{n}": S.ACTIVE}, user_id=user_id)
        ).connection_id
        for n in range(3)
    ]
    reso.latency = 1.0
    run = asyncio.ensure_future(
        runs.sync_connections(runtime.engine, ids, trigger="test", at_once=1)
    )
    await eventually(lambda: reso.request_count >= 1, within=5, what="the first MLS request")
    assert runtime.engine.guard.held() == set(ids)  # claimed up front, one of them running

    run.cancel()
    await asyncio.gather(run, return_exceptions=True)

    assert runtime.engine.guard.held() == frozenset()
