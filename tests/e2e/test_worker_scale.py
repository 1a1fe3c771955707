"""Scale-out with real `mls-sync worker` processes on the machine's PostgreSQL, against the
sandbox MLS over real HTTP: many workers, one run per feed at a time (one `sync_feed` job per
feed for a run over everyone), one request budget per MLS credential, a killed worker's job
retried, and one schedule for everyone that runs each feed on its cadence."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from factories import seed_connection, seed_user
from mls_sync.config import Settings
from mls_sync.domain.status import ListingStatus
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.models import SyncRun
from mls_sync.worker.schema import install_schema
from polling import eventually
from worker_support import WorkerProcess, run_finished, runs_where, worker_settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CREDENTIALS = [f"credential-{n}" for n in range(5)]
RATE = 8.0  # requests per second per credential, for every worker together


@pytest.fixture
def mls() -> ResoSandbox:
    # Each answer takes a moment, so syncs overlap and a worker can be killed mid-request.
    return ResoSandbox(tokens=CREDENTIALS, latency=0.05)


@pytest.fixture
def mls_url(mls: ResoSandbox) -> Iterator[str]:
    with BackgroundServer(mls.app) as server:
        yield server.url


@pytest.fixture
async def scale_settings(postgres_url: str, tmp_path: Path) -> Settings:
    settings = worker_settings(
        postgres_url, tmp_path, TokenCipher.generate_key(), mls_requests_per_second=RATE
    )
    await install_schema(settings)
    return settings


@pytest.fixture
async def runtime(scale_settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(scale_settings) as opened:
        yield opened


@pytest.fixture
def workers(scale_settings: Settings, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(started: list[WorkerProcess], settings: Settings, tmp_path: Path) -> WorkerProcess:
    worker = WorkerProcess(settings, tmp_path, f"worker-{len(started)}")
    started.append(worker)
    return worker


async def seed_many(
    runtime: Runtime,
    mls: ResoSandbox,
    mls_url: str,
    count: int,
    feeds: dict[str, str] | None = None,
) -> dict[str, tuple[str, str]]:
    """`count` connections (each its own private feed) over the credentials, two listings
    each, one of which has sold in the MLS; returns {connection id: (credential, sold listing
    id)}. Consecutive connections share a credential, so the jobs running at once on both
    workers draw on one budget. `feeds` is filled with {connection id: its feed id}."""
    feeds = {} if feeds is None else feeds
    user_id = await seed_user(runtime)
    seeded = {}
    per_credential = max(count // len(CREDENTIALS), 1)
    for n in range(count):
        token = CREDENTIALS[min(n // per_credential, len(CREDENTIALS) - 1)]
        connection = await seed_connection(
            runtime,
            mls,
            mls_url,
            {f"C{n:02d}-A": ListingStatus.ACTIVE, f"C{n:02d}-B": ListingStatus.ACTIVE},
            user_id=user_id,
            token=token,
        )
        mls.set_status(f"C{n:02d}-A", "Closed")
        seeded[connection.connection_id] = (token, connection.listings[f"C{n:02d}-A"].id)
        feeds[connection.connection_id] = connection.feed_id
    return seeded


def assert_no_overlap(runs: list[SyncRun]) -> None:
    """No feed's runs overlap in time: never two runs of one feed at once."""
    by_connection: dict[str, list[SyncRun]] = defaultdict(list)
    for run in runs:
        if run.finished_at is not None and not (run.totals or {}).get("skipped"):
            by_connection[run.scope_id or ""].append(run)
    for connection_id, rows in by_connection.items():
        rows.sort(key=lambda r: r.started_at)
        for earlier, later in itertools.pairwise(rows):
            assert earlier.finished_at is not None
            assert earlier.finished_at <= later.started_at, f"{connection_id} synced twice at once"


async def test_two_workers_drain_fifty_connections_within_one_budget_per_credential(
    runtime: Runtime,
    mls: ResoSandbox,
    mls_url: str,
    scale_settings: Settings,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    seeded = await seed_many(runtime, mls, mls_url, 50)
    start_worker(workers, scale_settings, tmp_path)
    start_worker(workers, scale_settings, tmp_path)

    everyone = await runtime.executor.sync_everyone(trigger="cron")  # type: ignore[union-attr]
    run_id = everyone.data.run_id  # type: ignore[union-attr]
    # Asked again at once: waiting connections are not queued twice, running ones wait
    # for their lock.
    second = await runtime.executor.sync_everyone(trigger="cron")  # type: ignore[union-attr]
    await eventually(lambda: run_finished(runtime.db, run_id), within=90, what="the run")
    await eventually(
        lambda: run_finished(runtime.db, second.data.run_id),  # type: ignore[union-attr]
        within=60,
        what="the second run",
    )

    # Both workers took jobs (job rows name their worker while it is registered).
    async with runtime.db.engine.connect() as conn:
        workers_used = (
            await conn.execute(
                text(
                    "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs "
                    "WHERE task_name = 'sync_feed'"
                )
            )
        ).scalar_one()
    assert workers_used == 2

    # Each connection's sold listing changed exactly once, in whichever run synced its feed
    # first; a feed whose run was still waiting was left to that run (skipped), not queued
    # twice.
    runs = await runs_where(runtime.db, SyncRun.id.in_([run_id, second.data.run_id]))  # type: ignore[union-attr]
    for run in runs:
        assert run.success is True
        assert run.progress == {"connectionsDone": 50, "connectionsTotal": 50}
    assert sum(run.totals["updatedListings"] for run in runs) == 50
    synced = [c for run in runs for c in run.totals["connections"] if not c["skipped"]]
    assert {c["connectionId"] for c in synced} == set(seeded)
    async with runtime.db.transaction() as session:
        for _, sold_listing in seeded.values():
            listing = await repo.get_listing(session, sold_listing)
            assert listing is not None and listing.status == ListingStatus.SOLD

    assert_no_overlap(await runs_where(runtime.db, SyncRun.scope == "feed"))

    # The sandbox saw each credential's requests spaced by one shared budget: never more
    # than RATE in any 0.9 s (a little slack for the sleeper that wakes a few ms late).
    by_token: dict[str, list[float]] = defaultdict(list)
    for request in mls.requests:
        by_token[request.token or ""].append(request.at)
    assert set(by_token) == set(CREDENTIALS)
    for token, times in by_token.items():
        times.sort()
        for i, start in enumerate(times):
            in_window = sum(1 for t in times[i:] if t < start + 0.9)
            assert in_window <= RATE, f"{token}: {in_window} requests within 0.9 s"
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.5 / RATE, f"{token}: requests {min(gaps):.3f} s apart"


async def test_a_job_of_a_killed_worker_is_retried_and_its_connection_converges(
    runtime: Runtime,
    mls: ResoSandbox,
    mls_url: str,
    scale_settings: Settings,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    seeded = await seed_many(runtime, mls, mls_url, 1)
    (connection_id, (_, sold_listing)) = next(iter(seeded.items()))
    mls.latency = 30.0  # the first request hangs until the worker is killed
    doomed = start_worker(workers, scale_settings, tmp_path)
    queued = await runtime.executor.sync_connection(  # type: ignore[union-attr]
        connection_id, user_id=None, trigger="api"
    )
    run_id = queued.data.run_id  # type: ignore[union-attr]

    async def mid_request() -> bool:
        return mls.request_count > 0

    await eventually(mid_request, within=30, what="the worker to ask the MLS")
    doomed.kill()
    mls.latency = 0.0
    start_worker(workers, scale_settings, tmp_path)

    await eventually(lambda: run_finished(runtime.db, run_id), within=60, what="the retried run")
    run = (await runs_where(runtime.db, SyncRun.id == run_id))[0]
    assert (run.success, run.totals["updatedListings"]) == (True, 1)
    async with runtime.db.transaction() as session:
        listing = await repo.get_listing(session, sold_listing)
        assert listing is not None and listing.status == ListingStatus.SOLD
    async with runtime.db.engine.connect() as conn:
        status, attempts = (
            await conn.execute(
                text(
                    "SELECT status, attempts FROM procrastinate_jobs "
                    "WHERE task_name = 'sync_connection'"
                )
            )
        ).one()
    assert status == "succeeded"
    assert attempts >= 1  # the killed worker's attempt, then the retry


async def test_the_schedule_runs_each_feed_on_its_cadence_once_per_tick_with_three_workers(
    runtime: Runtime,
    mls: ResoSandbox,
    mls_url: str,
    scale_settings: Settings,
    workers: list[WorkerProcess],
    tmp_path: Path,
) -> None:
    feeds: dict[str, str] = {}
    seeded = await seed_many(runtime, mls, mls_url, 5, feeds)
    every_two_seconds = scale_settings.model_copy(update={"schedule_cron": "*/2 * * * * *"})
    for _ in range(3):
        start_worker(workers, every_two_seconds, tmp_path)

    async def three_ticks_done() -> bool:
        parents = await runs_where(
            runtime.db, SyncRun.trigger == "schedule", SyncRun.scope == "all"
        )
        return sum(1 for p in parents if p.state == "finished") >= 3

    await eventually(three_ticks_done, within=60, what="three scheduled runs")
    for worker in workers:
        worker.stop()

    async with runtime.db.engine.connect() as conn:
        ticks = (
            (
                await conn.execute(
                    text(
                        "SELECT (args->>'timestamp')::bigint FROM procrastinate_jobs "
                        "WHERE task_name = 'schedule_syncs' AND status = 'succeeded' ORDER BY 1"
                    )
                )
            )
            .scalars()
            .all()
        )
    parents = await runs_where(runtime.db, SyncRun.trigger == "schedule", SyncRun.scope == "all")
    # Three workers each defer every tick; PostgreSQL keeps one job per tick, and each tick's
    # job is one run: consecutive ticks, none twice (a tick deferred just as the workers
    # stopped may still be waiting: only the ones that ran count).
    assert len(ticks) == len(set(ticks)) == len(parents) >= 3
    assert all(b - a == 2 for a, b in itertools.pairwise(ticks))
    # The first tick runs every feed (never run); the feeds' cadence (15 minutes) has not come
    # again within the test, so no later tick runs one again. A later tick may still see a
    # feed whose first run is waiting or just starting (a slow machine): it records that
    # feed's child as skipped (a job already waiting, or ran since it was queued).
    parents.sort(key=lambda p: p.started_at)
    children = [await runs_where(runtime.db, SyncRun.parent_id == p.id) for p in parents]
    ran = [c.scope_id for tick in children for c in tick if not (c.totals or {}).get("skipped")]
    assert sorted(ran) == sorted(feeds[cid] for cid in seeded)
    assert sorted(c.scope_id or "" for c in children[0]) == sorted(feeds.values())
    assert_no_overlap(await runs_where(runtime.db, SyncRun.scope == "feed"))
