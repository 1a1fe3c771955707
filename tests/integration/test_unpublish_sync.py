"""The outbox inside a sync run: a listing that sells takes its posts down, even when the process
dies between the status commit and the deletes, and what could not come down is reported in the
sync result. Through the engine, the sandbox MLS and the platform sandbox over real HTTP, on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from factories import connect_platform, publish, seed_connection, with_sandbox_platforms
from mls_sync.config import Settings
from mls_sync.domain.results import SyncError
from mls_sync.domain.status import ListingStatus, PostStatus
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.social.instagram import REFUSAL as INSTAGRAM_REFUSAL
from mls_sync.social.tiktok import REFUSAL as TIKTOK_REFUSAL
from mls_sync.store.models import Listing, UnpublishJob
from mls_sync.store.types import utcnow
from mls_sync.sync.unpublish import Unpublisher

DELETABLE = ("facebook", "linkedin", "x", "google_business", "pinterest")


@pytest.fixture
def settings(settings: Settings, platforms_url: str) -> Settings:
    return with_sandbox_platforms(settings, platforms_url)


def post_id(platform: str, n: int) -> str:
    """A distinct, realistic post id per listing and platform."""
    return {
        "facebook": f"104857600_55500011{n}",
        "instagram": f"1789569566800455{n}",
        "linkedin": f"urn:li:share:718000000000000000{n}",
        "x": f"185000000000000000{n}",
        "google_business": f"accounts/1001/locations/2002/localPosts/300{n}",
        "pinterest": f"98765432101234567{n}",
        "tiktok": f"730000000000000000{n}",
    }[platform]


async def jobs_left(runtime: Runtime) -> int:
    async with runtime.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(UnpublishJob)) or 0)


async def statuses(runtime: Runtime, listing_id: str) -> dict[str, str]:
    async with runtime.db.transaction() as session:
        return {p.platform: p.status for p in await session.posts.of_listing(listing_id)}


class Crash(Exception):
    """The process dying: nothing after this point runs."""


async def test_a_crash_after_the_status_commit_and_before_the_deletes_loses_nothing(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seeded = await seed_connection(
        runtime, reso, reso_url, {"K1": ListingStatus.ACTIVE, "K2": ListingStatus.PENDING}
    )
    for platform in DELETABLE:
        await connect_platform(runtime, platforms, seeded.user_id, platform)
    expected = []
    for n, key in enumerate(("K1", "K2")):
        for platform in DELETABLE:
            await publish(
                runtime, platforms, seeded.listings[key], platform, post_id=post_id(platform, n)
            )
            expected.append((platform, post_id(platform, n)))
        reso.set_status(key, "Closed")

    async def die(*_: object, **__: object) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(Unpublisher, "drain", die)
        with pytest.raises(Crash):
            await runtime.engine.sync_connection(seeded.connection_id)

    # The status change and its outbox rows were committed together; nothing was deleted.
    async with runtime.db.transaction() as session:
        sold = [(await session.get(Listing, seeded.listings[k].id)) for k in ("K1", "K2")]
    assert [listing.status for listing in sold if listing] == [ListingStatus.SOLD] * 2
    assert await jobs_left(runtime) == 10
    assert platforms.deletes == []

    recovered = await runtime.engine.sync_connection(seeded.connection_id)
    again = await runtime.engine.sync_connection(seeded.connection_id)

    assert recovered.result.status_changes == []  # the MLS news was applied before the crash
    assert recovered.result.unpublished_posts == 10
    assert again.result.unpublished_posts == 0
    assert sorted(platforms.deletes) == sorted(expected)  # each post deleted exactly once
    for key in ("K1", "K2"):
        assert set((await statuses(runtime, seeded.listings[key].id)).values()) == {
            PostStatus.UNPUBLISHED
        }
    assert await jobs_left(runtime) == 0


async def test_posts_only_a_person_can_remove_are_listed_in_the_sync_result(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": ListingStatus.ACTIVE})
    listing = seeded.listings["K1"]
    for platform in ("facebook", "instagram", "tiktok"):
        await connect_platform(runtime, platforms, seeded.user_id, platform)
        await publish(runtime, platforms, listing, platform, post_id=post_id(platform, 1))
    reso.set_status("K1", "Closed")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert outcome.success
    assert outcome.result.unpublished_posts == 1  # only what actually came down
    refusals = [e for e in outcome.result.errors if e.error in (INSTAGRAM_REFUSAL, TIKTOK_REFUSAL)]
    assert sorted(refusals, key=lambda e: e.error) == [
        SyncError(listing_id=listing.id, mls_number="MLS-K1", error=INSTAGRAM_REFUSAL),
        SyncError(listing_id=listing.id, mls_number="MLS-K1", error=TIKTOK_REFUSAL),
    ]
    assert await statuses(runtime, listing.id) == {
        "facebook": PostStatus.UNPUBLISHED,
        "instagram": PostStatus.UNPUBLISH_FAILED,
        "tiktok": PostStatus.UNPUBLISH_FAILED,
    }
    wire = outcome.result.to_wire()
    assert {"listingId": listing.id, "mlsNumber": "MLS-K1", "error": TIKTOK_REFUSAL} in wire[
        "errors"
    ]


async def test_a_rate_limited_post_comes_down_in_a_later_run(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": ListingStatus.ACTIVE})
    listing = seeded.listings["K1"]
    await connect_platform(runtime, platforms, seeded.user_id, "x")
    await publish(runtime, platforms, listing, "x", post_id=post_id("x", 1))
    reso.set_status("K1", "Closed")
    platforms.throttle["x"] = 1

    throttled = await runtime.engine.sync_connection(seeded.connection_id)
    async with runtime.db.transaction() as session:  # X's 15-minute window passes
        await session.execute(
            update(UnpublishJob).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    later = await runtime.engine.sync_connection(seeded.connection_id)

    assert (throttled.result.unpublished_posts, throttled.result.errors) == (0, [])
    assert later.result.status_changes == []
    assert later.result.unpublished_posts == 1
    assert await statuses(runtime, listing.id) == {"x": PostStatus.UNPUBLISHED}
    assert platforms.deletes == [("x", post_id("x", 1))]


async def test_an_expired_token_is_refreshed_during_the_sync_and_the_post_comes_down(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": ListingStatus.ACTIVE})
    listing = seeded.listings["K1"]
    for platform in ("x", "pinterest"):
        await connect_platform(runtime, platforms, seeded.user_id, platform, expired=True)
        await publish(runtime, platforms, listing, platform, post_id=post_id(platform, 1))
    reso.set_status("K1", "Closed")

    outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert (outcome.result.unpublished_posts, outcome.result.errors) == (2, [])
    assert sorted(p for p, _ in platforms.refreshes) == ["pinterest", "x"]
