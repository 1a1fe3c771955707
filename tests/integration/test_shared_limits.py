"""The shared request budget: one GCRA row per window in PostgreSQL, so separate processes
(here: separate Database pools, each with its own budget object) draw on one budget per MLS
credential. PostgreSQL only: SQLite deployments run one process and the in-process budget."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from mls_sync.mls.errors import MlsBudgetExhausted
from mls_sync.mls.limits import RateBudgets
from mls_sync.mls.profiles import PROFILES
from mls_sync.mls.shared_limits import SharedRateBudgets, SharedRequestBudget
from mls_sync.store.database import Database
from mls_sync.store.sql.rate_buckets import SqlRateBuckets

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pools(postgres_url: str) -> AsyncIterator[list[Database]]:
    """Three connection pools on one database: three processes, as far as budgets can tell."""
    databases = [Database(postgres_url) for _ in range(3)]
    yield databases
    for database in databases:
        await database.dispose()


async def _grants(budget: SharedRequestBudget, count: int) -> list[float]:
    granted = []
    for _ in range(count):
        await budget.acquire()
        granted.append(time.monotonic())
    return granted


async def test_processes_sharing_a_credential_are_spaced_by_one_budget(
    pools: list[Database],
) -> None:
    rate = 20.0
    budgets = [
        SharedRequestBudget(SqlRateBuckets(db), "mls:shared", per_second=rate) for db in pools
    ]
    per_process = await asyncio.gather(*(_grants(b, 5) for b in budgets))
    granted = sorted(t for times in per_process for t in times)
    gaps = [b - a for a, b in itertools.pairwise(granted)]
    # Fifteen slots 50 ms apart whoever takes them (slack for a sleeper that wakes a few ms
    # late); three private budgets would have granted them three at a time.
    assert min(gaps) >= 0.7 / rate
    assert granted[-1] - granted[0] >= 14 * 0.95 / rate


async def test_different_credentials_never_wait_for_each_other(pools: list[Database]) -> None:
    rate = 10.0
    a = SharedRequestBudget(SqlRateBuckets(pools[0]), "mls:credential-a", per_second=rate)
    b = SharedRequestBudget(SqlRateBuckets(pools[1]), "mls:credential-b", per_second=rate)
    granted_a, granted_b = await asyncio.gather(_grants(a, 6), _grants(b, 6))
    # Interleaved, not one after the other: b's first slot does not wait for a's last.
    assert granted_b[0] < granted_a[-1]
    assert granted_a[0] < granted_b[-1]


async def test_the_hourly_limit_holds_across_processes_and_refuses_rather_than_waits(
    pools: list[Database],
) -> None:
    # 10 an hour: a burst of half the limit (5), then one slot every 12 minutes.
    budgets = [
        SharedRequestBudget(
            SqlRateBuckets(db), "mls:hourly", per_second=1000, per_hour=10, max_wait=1.0
        )
        for db in pools
    ]
    for i in range(5):
        await budgets[i % 3].acquire()
    for budget in budgets:
        with pytest.raises(MlsBudgetExhausted, match="this hour"):
            await budget.acquire()


async def test_a_pause_announced_by_one_process_stops_the_others(pools: list[Database]) -> None:
    first = SharedRequestBudget(
        SqlRateBuckets(pools[0]), "mls:paused", per_second=1000, max_wait=2.0
    )
    second = SharedRequestBudget(
        SqlRateBuckets(pools[1]), "mls:paused", per_second=1000, max_wait=2.0
    )
    await second.acquire()  # free before the pause
    first.pause(60.0)  # e.g. a 429 with Retry-After: 60
    await first.settled()
    with pytest.raises(MlsBudgetExhausted, match="this minute"):
        await second.acquire()
    with pytest.raises(MlsBudgetExhausted):
        await first.acquire()  # and the process that saw the 429, without asking the database


async def test_a_refused_window_is_left_as_it_was(pools: list[Database]) -> None:
    budget = SharedRequestBudget(
        SqlRateBuckets(pools[0]), "mls:refused", per_second=1000, per_hour=2, max_wait=0.0
    )
    await budget.acquire()
    async with pools[0].engine.connect() as conn:
        before = (
            await conn.execute(text("SELECT tat FROM rate_buckets WHERE key = 'mls:refused:hour'"))
        ).scalar_one()
    with pytest.raises(MlsBudgetExhausted):
        await budget.acquire()
    async with pools[0].engine.connect() as conn:
        after = (
            await conn.execute(text("SELECT tat FROM rate_buckets WHERE key = 'mls:refused:hour'"))
        ).scalar_one()
    assert after == before


async def test_connections_share_a_row_exactly_when_they_share_an_in_process_budget(
    pools: list[Database],
) -> None:
    shared = SharedRateBudgets(SqlRateBuckets(pools[0]), 2.0)
    local = RateBudgets(2.0)
    generic = PROFILES["generic"]
    one = shared.for_connection(generic, "https://mls.example/odata", "token:abc")
    same = shared.for_connection(generic, "https://other.example/odata", "token:abc")
    other = shared.for_connection(generic, "https://mls.example/odata", "token:xyz")
    assert one is same and one is not other
    assert local.for_connection(
        generic, "https://mls.example/odata", "token:abc"
    ) is local.for_connection(generic, "https://other.example/odata", "token:abc")
    await one.acquire()
    async with pools[0].engine.connect() as conn:
        keys = (await conn.execute(text("SELECT key FROM rate_buckets"))).scalars().all()
    # Budget rows are named by a digest: no token in the database.
    assert keys and all("abc" not in key for key in keys)
