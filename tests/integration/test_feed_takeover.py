"""A crash costs one cycle, not a claim period: a run that takes over a feed whose holder
died also takes over the dead holder's claimed unpublish jobs and finishes them."""

from __future__ import annotations

from datetime import timedelta

from factories import Clock, Seeded, job_of, post_of, seed_connection, seed_posts
from mls_sync.config import Settings
from mls_sync.domain.status import ListingStatus as S
from mls_sync.domain.status import PostStatus
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.database import Database
from mls_sync.sync import runs
from mls_sync.sync.guard import LeaseGuard


async def a_queued_unpublish_job(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> tuple[Seeded, str, str]:
    """A sold listing of a private feed with one published post and its unpublish job;
    returns the connection, the post's id and the job's id."""
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.SOLD})
    [post_id] = await seed_posts(runtime, platforms, seeded.listings["K1"], ("facebook",))
    async with runtime.db.transaction() as session:
        await session.outbox.enqueue(seeded.listings["K1"].id)
    job = await job_of(runtime, post_id)
    assert job is not None
    return seeded, post_id, job.id


async def test_taking_over_a_dead_holders_feed_takes_over_its_claimed_unpublish_jobs(
    settings: Settings,
    db: Database,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    clock: Clock,
) -> None:
    async with open_runtime(settings, db=db, clock=clock) as runtime:
        seeded, post_id, job_id = await a_queued_unpublish_job(runtime, reso, reso_url, platforms)

        # Another process takes the feed, claims the job for its drain, and dies before it
        # calls the platform: its lease lapses after the TTL, its claim only after 5 minutes.
        dead = LeaseGuard(db, clock=clock)
        assert await dead.try_acquire(seeded.feed_id)
        async with runtime.db.transaction() as session:
            now = clock()
            assert await session.outbox.claim(
                job_id, now=now, until=now + timedelta(minutes=5), by=dead.holder
            )
        clock.advance(seconds=settings.lease_ttl_seconds + 1)

        response = await runs.sync_connection(runtime.engine, seeded.connection_id)

    assert response.success, response.message
    assert response.result.unpublished_posts == 1
    assert (await post_of(runtime, post_id)).status == PostStatus.UNPUBLISHED
    assert await job_of(runtime, post_id) is None
    assert not platforms.has_post("facebook", "facebook-K1")


async def test_a_live_holders_claims_are_left_alone(
    settings: Settings,
    db: Database,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    clock: Clock,
) -> None:
    async with open_runtime(settings, db=db, clock=clock) as runtime:
        seeded, post_id, job_id = await a_queued_unpublish_job(runtime, reso, reso_url, platforms)
        async with runtime.db.transaction() as session:  # another drain is deleting it now
            now = clock()
            assert await session.outbox.claim(
                job_id, now=now, until=now + timedelta(minutes=5), by="a-live-drain"
            )

        response = await runs.sync_connection(runtime.engine, seeded.connection_id)

    assert response.result.unpublished_posts == 0
    assert (await post_of(runtime, post_id)).status == PostStatus.PUBLISHED
    assert await job_of(runtime, post_id) is not None
    assert platforms.has_post("facebook", "facebook-K1")
