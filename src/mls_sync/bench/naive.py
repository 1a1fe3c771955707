"""The product spec's strategy, as the baseline: ask the MLS once per listing, 50 at a time.

Each listing is one `GET /Property('KEY')`, sent under the same budget per credential as our
sync (one request every 1/rps seconds, no burst: `aiolimiter`), with at most 50 requests in
flight. Its answer is compared with our stored status; nothing is written, so the baseline's
figure is a lower bound on what the spec's strategy costs (it would also write and unpublish).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from aiolimiter import AsyncLimiter
from sqlalchemy import select

from mls_sync.bench.fleet import Agent
from mls_sync.domain.reso import StatusMapper, StatusMappingError
from mls_sync.store.database import Database
from mls_sync.store.models import Listing

IN_FLIGHT = 50  # the spec's batch of parallel lookups


@dataclass(frozen=True)
class NaiveRun:
    listings: int  # how many listings it checked
    seconds: float
    mismatches: int  # listings whose MLS status differs from ours
    failures: int  # lookups that got no usable answer


def sample(agents: Sequence[Agent], at_most: int) -> list[tuple[Agent, str]]:
    """Up to `at_most` listings, taken from every agent in turn, so each credential gets its
    share and the time extrapolates linearly to all listings."""
    queues = [list(agent.listing_keys) for agent in agents]
    picked: list[tuple[Agent, str]] = []
    depth = 0
    while len(picked) < at_most and any(depth < len(q) for q in queues):
        for agent, queue in zip(agents, queues, strict=True):
            if depth < len(queue) and len(picked) < at_most:
                picked.append((agent, queue[depth]))
        depth += 1
    return picked


async def run_naive(
    db: Database,
    mls_url: str,
    picked: Sequence[tuple[Agent, str]],
    *,
    requests_per_second: float,
    request_timeout: float = 30.0,
) -> NaiveRun:
    ours = await _our_statuses(db, [key for _, key in picked])
    mapper = StatusMapper()
    budgets = {agent.token: AsyncLimiter(1, 1.0 / requests_per_second) for agent, _ in picked}
    gate = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=mls_url, timeout=request_timeout, limits=limits) as http:

        async def look_up(agent: Agent, key: str) -> str | None:
            async with gate:
                await budgets[agent.token].acquire()
                response = await http.get(
                    f"/Property('{key}')",
                    params={"$select": "ListingKey,StandardStatus"},
                    headers={"Authorization": f"Bearer {agent.token}"},
                )
            if response.status_code != 200:
                return None
            status: str | None = response.json().get("StandardStatus")  # RESO: a string
            return status

        started = time.perf_counter()
        answers = await asyncio.gather(*(look_up(agent, key) for agent, key in picked))
        seconds = time.perf_counter() - started
    mismatches = failures = 0
    for (_, key), status in zip(picked, answers, strict=True):
        try:
            if status is None:
                raise StatusMappingError("no answer")
            mismatches += mapper.map(status) != ours[key]
        except StatusMappingError:
            failures += 1
    return NaiveRun(len(picked), seconds, mismatches, failures)


async def _our_statuses(db: Database, keys: Sequence[str]) -> dict[str, str]:
    async with db.transaction() as session:
        rows = await session.execute(
            select(Listing.listing_key, Listing.status).where(Listing.listing_key.in_(keys))
        )
        return {key: status for key, status in rows}
