"""Load: `mls-sync serve` as a real process on loopback, with 50 concurrent cron calls and 200
concurrent user calls against a slow sandbox MLS. The API keeps answering (healthz during the
load), no call ends in a 5xx, and no connection is ever synced twice at the same time."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api_support import CRON_SECRET, bearer, new_user
from factories import seed_connection
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.models import MlsFeed, SyncRun
from polling import eventually

pytestmark = pytest.mark.slow

USERS = 5
CONNECTIONS_PER_USER = 2
CRON_CALLS = 50
USER_CALLS = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def service(runtime: Runtime, database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """`mls-sync serve` on a free loopback port, on the test's database; it must still be
    running when the test ends (a crash under load is a failure, shown with its stderr)."""
    port = free_port()
    stderr_path = tmp_path / "serve.stderr"
    settings = runtime.settings
    assert settings.token_keys is not None
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MLS_SYNC_DATA_DIR": str(settings.data_dir),
        "MLS_SYNC_TOKEN_KEYS": settings.token_keys.get_secret_value(),
        "CRON_SECRET": CRON_SECRET,
        "MLS_SYNC_LOG_FORMAT": "json",
        "MLS_SYNC_LOG_LEVEL": "WARNING",
        "MLS_SYNC_SHUTDOWN_GRACE_SECONDS": "1",
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "mls_sync.cli", "serve", "--port", str(port), "--no-scheduler"),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr_path.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:

            async def answering() -> bool:
                try:
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                assert process.returncode is None, "serve exited at start"
                return False

            await eventually(answering, within=30, what="serve to answer /healthz")
        yield url
        assert process.returncode is None, f"serve died: {stderr_path.read_text()[-2000:]}"
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=20)


async def test_the_service_keeps_answering_and_syncs_each_connection_once_at_a_time(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, service: str
) -> None:
    """Users' syncs and cron calls at once: every answer 200 or 409, never a 5xx, the health
    check answering throughout, and each connection's feed replicated one run at a time."""
    keys: list[str] = []
    connections: dict[str, str] = {}  # connection id -> its owner's API key
    feeds: set[str] = set()  # each connection's private feed
    for u in range(USERS):
        user_id, key = await new_user(runtime, f"agent{u}@example.com")
        keys.append(key)
        for c in range(CONNECTIONS_PER_USER):
            statuses = {f"U{u}C{c}L{n}": S.ACTIVE for n in range(3)}
            seeded = await seed_connection(runtime, reso, reso_url, statuses, user_id=user_id)
            connections[seeded.connection_id] = key
            feeds.add(seeded.feed_id)
    async with runtime.db.transaction() as session:  # the generic profile's 2/s is for real MLSs
        for row in (await session.execute(select(MlsFeed))).scalars():
            row.profile_overrides = {"requests_per_second": 100}
    reso.latency = 0.2  # slow enough that the calls overlap
    rng = random.Random(5)
    ids = list(connections)

    def user_call() -> tuple[str, str, str]:
        key = rng.choice(keys)
        cid = rng.choice(ids)
        return rng.choice(
            [
                ("POST", "/api/sync", key),
                ("POST", f"/api/mls-connections/{cid}/sync", connections[cid]),
                ("GET", "/api/listings", key),
                ("GET", "/api/mls-connections", key),
            ]
        )

    calls = [("POST", "/api/cron/sync-mls-status", CRON_SECRET)] * CRON_CALLS
    calls += [user_call() for _ in range(USER_CALLS)]
    rng.shuffle(calls)
    limits = httpx.Limits(max_connections=len(calls) + 10, max_keepalive_connections=0)
    health: list[int] = []
    async with httpx.AsyncClient(base_url=service, timeout=120, limits=limits) as client:

        async def call(method: str, path: str, secret: str) -> tuple[str, int, Any]:
            response = await client.request(method, path, headers=bearer(secret))
            return path, response.status_code, response.json()

        load = asyncio.gather(*(call(*c) for c in calls))
        while not load.done():  # the process answers while it syncs
            health.append((await client.get("/healthz", timeout=10)).status_code)
            await asyncio.sleep(0.1)
        answers = await asyncio.wait_for(load, timeout=300)

    statuses = [status for _, status, _ in answers]
    assert [a for a in answers if a[1] >= 500] == []
    assert set(statuses) <= {200, 409}
    assert health and set(health) == {200}
    cron = [body for path, _, body in answers if path.startswith("/api/cron")]
    assert all(body["success"] for body in cron)
    async with runtime.db.transaction() as session:
        runs = (await session.execute(select(SyncRun))).scalars().all()
    per_feed: dict[str, list[SyncRun]] = defaultdict(list)
    for run in runs:
        assert run.finished_at is not None  # nothing was left hanging
        if run.scope == "feed":
            per_feed[run.scope_id or ""].append(run)
    assert set(per_feed) == feeds  # every connection's feed was replicated
    for feed_id, sequence in per_feed.items():
        sequence.sort(key=lambda r: r.started_at)
        for before, after in itertools.pairwise(sequence):
            assert before.finished_at is not None
            assert before.finished_at <= after.started_at, f"{feed_id} replicated twice at once"
