"""Crash safety: a real `mls-sync sync connection` process killed with SIGKILL while it fetches
from the MLS, between the status commits and the deletes, and while it deletes; the next run
converges with nothing lost or doubled. On SQLite and PostgreSQL. The killed process's lease and
delete claims lapse on the survivor's clock, not by waiting for them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import func, select

from factories import (
    RESO_STATUS,
    Clock,
    connect_platform,
    publish,
    seed_connection,
    seed_user,
)
from factories import with_sandbox_platforms as sandbox_platforms
from mls_sync import actions
from mls_sync.config import Settings
from mls_sync.domain.status import ListingStatus as S
from mls_sync.domain.status import PostStatus
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.database import Database
from mls_sync.store.models import (
    Listing,
    ListingStatusHistory,
    MlsConnection,
    Post,
    UnpublishJob,
)
from mls_sync.sync.unpublish import DEFAULT_LEASE as DELETE_CLAIM
from polling import eventually

pytestmark = pytest.mark.slow

SOLD = ("K1", "K2", "K3", "K4")
PENDING = ("K5", "K6")
PLATFORMS = ("facebook", "x")
LEASE_TTL = 60.0  # the killed process's connection lease: it lapses on the survivor's clock


@pytest.fixture
def settings(settings: Settings, platforms_url: str) -> Settings:
    return sandbox_platforms(settings, platforms_url).model_copy(
        update={"mls_batch_size": 2, "mls_timeout_seconds": 10.0}
    )


@pytest.fixture
async def runtime(settings: Settings, db: Database, clock: Clock) -> AsyncIterator[Runtime]:
    """The survivor: this process, whose leases and outbox read the test's clock."""
    async with open_runtime(settings, db=db, clock=clock) as opened:
        yield opened


def child_env(settings: Settings, database_url: str, platforms_url: str) -> dict[str, str]:
    assert settings.token_keys is not None
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MLS_SYNC_DATA_DIR": str(settings.data_dir),
        "MLS_SYNC_TOKEN_KEYS": settings.token_keys.get_secret_value(),
        "MLS_SYNC_MLS_BATCH_SIZE": "2",
        "MLS_SYNC_MLS_TIMEOUT_SECONDS": "10",
        "MLS_SYNC_PLATFORM_TIMEOUT_SECONDS": "10",
        "MLS_SYNC_LEASE_TTL_SECONDS": str(LEASE_TTL),
        "MLS_SYNC_LEASE_RENEW_SECONDS": "0.5",
        "MLS_SYNC_LOG_FORMAT": "json",
    }
    for name, value in PlatformSandbox.settings_for(platforms_url).items():
        env[f"MLS_SYNC_{name.upper()}"] = value
    return env


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


Ready = Callable[[], Awaitable[bool]]


async def scenario(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> tuple[str, dict[str, tuple[str, str]]]:
    """Six active listings, four of them with posts; then the MLS sells four, two go pending."""
    user_id = await seed_user(runtime)
    keys = SOLD + PENDING
    seeded = await seed_connection(
        runtime, reso, reso_url, dict.fromkeys(keys, S.ACTIVE), user_id=user_id
    )
    async with runtime.db.transaction() as session:  # the generic profile's 2/s is for real MLSs
        connection = await session.get(MlsConnection, seeded.connection_id)
        assert connection is not None
        connection.profile_overrides = {"requests_per_second": 100}
    for platform in PLATFORMS:
        await connect_platform(runtime, platforms, user_id, platform, refresh=False)
    posts = {}
    for n, key in enumerate(SOLD):
        for platform in PLATFORMS:
            platform_post_id = f"1850000000000000{n}{len(platform)}"
            ours = await publish(
                runtime, platforms, seeded.listings[key], platform, post_id=platform_post_id
            )
            posts[ours] = (platform, platform_post_id)
    for key in SOLD:
        reso.set_status(key, RESO_STATUS[S.SOLD])
    for key in PENDING:
        reso.set_status(key, RESO_STATUS[S.PENDING])
    return seeded.connection_id, posts


async def kill_when(process: asyncio.subprocess.Process, ready: Ready, within: float) -> None:
    async def at_the_kill_point() -> bool:
        if await ready():
            return True
        if process.returncode is not None:
            stderr = await process.stderr.read() if process.stderr else b""
            pytest.fail(f"the sync finished before the kill point: {stderr.decode()[-2000:]}")
        return False

    try:
        await eventually(at_the_kill_point, within=within, what="the kill point", step=0.02)
    except AssertionError:
        process.kill()
        raise
    process.send_signal(signal.SIGKILL)
    await process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("point", ["fetching", "after_status_commit", "deleting"])
async def test_a_killed_sync_is_finished_by_the_next_run_with_nothing_lost_or_doubled(
    point: str,
    runtime: Runtime,
    settings: Settings,
    database_url: str,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    platforms_url: str,
    clock: Clock,
) -> None:
    connection_id, posts = await scenario(runtime, reso, reso_url, platforms)

    async def history() -> int:
        return await count(runtime, ListingStatusHistory)

    ready: Ready
    if point == "fetching":
        reso.latency = 5.0  # every MLS answer is slow: killed while waiting for the first

        async def ready() -> bool:
            return reso.request_count >= 1

    elif point == "after_status_commit":
        reso.slow_keys = dict.fromkeys(PENDING, 5.0)  # the other batches answer at once

        async def ready() -> bool:
            return await history() >= 2 and await count(runtime, UnpublishJob) >= 2

    else:
        platforms.latency_seconds = 5.0  # killed with deletes in flight

        async def ready() -> bool:
            return len(platforms.requests) >= 1

    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "mls_sync.cli", "sync", "connection", connection_id, "--json"),
        env=child_env(settings, database_url, platforms_url),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    await kill_when(child, ready, within=30)

    if point == "fetching":
        assert await history() == 0
    if point == "after_status_commit":
        assert platforms.requests == [] and await count(runtime, UnpublishJob) >= 2
    reso.latency, reso.slow_keys, platforms.latency_seconds = 0.0, {}, 0.0
    clock.advance(seconds=LEASE_TTL + 1)  # the dead process's connection lease lapses
    clock.advance(DELETE_CLAIM)  # and so do the deletes it had claimed
    response = await actions.sync_mls_status(connection_id, engine=runtime.engine, trigger="test")

    assert response.success, response.message
    await assert_converged_once(runtime, reso, platforms, posts)


async def assert_converged_once(
    runtime: Runtime,
    reso: ResoSandbox,
    platforms: PlatformSandbox,
    posts: dict[str, tuple[str, str]],
) -> None:
    async with runtime.db.transaction() as session:
        listings = {x.listing_key: x for x in (await session.execute(select(Listing))).scalars()}
        history = (await session.execute(select(ListingStatusHistory))).scalars().all()
        post_status = {p.id: p.status for p in (await session.execute(select(Post))).scalars()}
        jobs = await session.scalar(select(func.count()).select_from(UnpublishJob))
    assert {k: listings[k].status for k in SOLD} == dict.fromkeys(SOLD, S.SOLD)
    assert {k: listings[k].status for k in PENDING} == dict.fromkeys(PENDING, S.PENDING)
    # One history row per changed listing: the change was recorded once, by whichever run.
    per_listing = Counter(row.listing_id for row in history)
    assert sorted(per_listing.values()) == [1] * len(SOLD + PENDING)
    assert set(post_status.values()) == {PostStatus.UNPUBLISHED} and jobs == 0
    deleted = Counter(platforms.deletes)
    for platform, platform_post_id in posts.values():
        assert deleted[(platform, platform_post_id)] == 1  # came down once, and is gone
        assert not platforms.has_post(platform, platform_post_id)
