"""The unpublish outbox, platform by platform: what happens to a sold listing's post on each
platform when it is deleted, already gone, behind an expired token, throttled, or unconnected.

The drain runs against the platform sandbox over real HTTP, on SQLite and PostgreSQL, with a
clock the tests move forward to stand for "the next run".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from factories import (
    PLATFORM_POST_IDS,
    Clock,
    connect_platform,
    connection_of,
    job_of,
    make_unpublisher,
    post_of,
    publish,
    queue_unpublish,
    seed_listing,
    seed_user,
    with_sandbox_platforms,
)
from mls_sync.config import Settings
from mls_sync.domain.status import ConnectionState, PostStatus
from mls_sync.observability.alerts import token_expiring_alert
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.social.instagram import REFUSAL as INSTAGRAM_REFUSAL
from mls_sync.social.tiktok import REFUSAL as TIKTOK_REFUSAL
from mls_sync.store.models import Listing
from mls_sync.store.types import utcnow
from mls_sync.sync.runs import sync_everyone
from mls_sync.sync.unpublish import DEFAULT_LEASE, Unpublisher

ALL = ["facebook", "instagram", "linkedin", "x", "google_business", "pinterest", "tiktok"]
DELETABLE = ["facebook", "linkedin", "x", "google_business", "pinterest"]
REFUSING = {"instagram": INSTAGRAM_REFUSAL, "tiktok": TIKTOK_REFUSAL}
REFRESH_GRANT = ["linkedin", "x", "google_business", "pinterest"]  # refresh with a refresh token
ROTATING = {"x", "pinterest"}
# The platforms the drain calls at all (TikTok's API cannot delete, so it is never asked).
CALLED = [p for p in ALL if p != "tiktok"]


@pytest.fixture
def settings(settings: Settings, platforms_url: str) -> Settings:
    return with_sandbox_platforms(settings, platforms_url)


@pytest.fixture
def unpublisher(
    runtime: Runtime, settings: Settings, http: httpx.AsyncClient, clock: Clock
) -> Unpublisher:
    return make_unpublisher(runtime, settings, http, clock)


@dataclass
class Sold:
    listing: Listing
    post_id: str  # ours
    access: str | None
    refresh: str | None


async def sold_listing_with_a_post(
    runtime: Runtime,
    platforms: PlatformSandbox,
    platform: str,
    *,
    connect: bool = True,
    on_platform: bool = True,
    expired: bool = False,
    expires_at: datetime | None = None,
) -> Sold:
    """A listing that just sold, its published post on `platform`, and its unpublish job."""
    listing = await seed_listing(runtime)
    access = refresh = None
    if connect:
        access, refresh = await connect_platform(
            runtime, platforms, listing.user_id, platform, expired=expired, expires_at=expires_at
        )
    post_id = await publish(runtime, platforms, listing, platform, on_platform=on_platform)
    assert await queue_unpublish(runtime, listing.id) == 1
    return Sold(listing, post_id, access, refresh)


# -- the post comes down -------------------------------------------------------------------------


@pytest.mark.parametrize("platform", DELETABLE)
async def test_a_sold_listings_post_comes_down_and_is_marked_unpublished(
    platform: str, runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher
) -> None:
    sold = await sold_listing_with_a_post(runtime, platforms, platform)

    report = await unpublisher.drain()

    assert report.unpublished_by_listing == {sold.listing.id: 1}
    assert report.errors == []
    post = await post_of(runtime, sold.post_id)
    assert (post.status, post.last_error) == (PostStatus.UNPUBLISHED, None)
    assert post.unpublished_at is not None
    assert await job_of(runtime, sold.post_id) is None
    assert platforms.deletes == [(platform, PLATFORM_POST_IDS[platform])]


@pytest.mark.parametrize("platform", list(REFUSING))
async def test_a_post_the_platform_will_not_delete_fails_for_a_person_to_remove(
    platform: str, runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher
) -> None:
    sold = await sold_listing_with_a_post(runtime, platforms, platform)

    report = await unpublisher.drain()
    again = await unpublisher.drain()

    refusal = REFUSING[platform]
    assert report.unpublished == 0
    assert report.errors == [(sold.listing.id, "MLS-K1", refusal)]
    post = await post_of(runtime, sold.post_id)
    assert (post.status, post.last_error) == (PostStatus.UNPUBLISH_FAILED, refusal)
    assert await job_of(runtime, sold.post_id) is None  # settled: not retried
    assert (again.unpublished, again.errors) == (0, [])
    assert platforms.has_post(platform, PLATFORM_POST_IDS[platform])
    assert platforms.deletes == []


async def test_tiktok_is_not_called_at_all_and_its_token_is_not_refreshed(
    runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher, clock: Clock
) -> None:
    await sold_listing_with_a_post(
        runtime, platforms, "tiktok", expires_at=clock() - timedelta(hours=1)
    )

    await unpublisher.drain()

    assert platforms.requests == []
    assert platforms.refreshes == []


# -- already gone ----------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", CALLED)
async def test_a_post_already_gone_on_the_platform_counts_as_unpublished(
    platform: str, runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher
) -> None:
    # The agent deleted it by hand: the platform no longer has it (404 or its own "does not
    # exist"; for Instagram the read-back confirms it).
    sold = await sold_listing_with_a_post(runtime, platforms, platform, on_platform=False)

    report = await unpublisher.drain()

    assert (report.unpublished, report.errors) == (1, [])
    assert (await post_of(runtime, sold.post_id)).status == PostStatus.UNPUBLISHED


# -- expired tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", REFRESH_GRANT)
async def test_an_expired_token_is_refreshed_and_the_delete_tried_once_more(
    platform: str, runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher
) -> None:
    sold = await sold_listing_with_a_post(runtime, platforms, platform, expired=True)

    report = await unpublisher.drain()

    assert (report.unpublished, report.errors) == (1, [])
    assert (await post_of(runtime, sold.post_id)).status == PostStatus.UNPUBLISHED
    assert platforms.refreshes == [(platform, sold.refresh)]
    (grant,) = platforms.grants
    stored = await connection_of(runtime, sold.listing.user_id, platform)
    assert stored.state == ConnectionState.ACTIVE
    assert stored.expires_at is not None and stored.expires_at > utcnow()
    assert runtime.cipher.decrypt(stored.access_token_encrypted) == grant.access_token
    assert stored.refresh_token_encrypted is not None
    refresh = runtime.cipher.decrypt(stored.refresh_token_encrypted)
    if platform in ROTATING:
        # The rotated refresh token is the one stored: the old one is spent.
        assert refresh == grant.refresh_token != sold.refresh
    else:
        assert refresh == sold.refresh
    assert platforms.valid_refresh_tokens(platform) == {refresh}
    # Deleting took two calls: the one the platform refused, the one with the new token.
    deletes = [r for r in platforms.requests if r.platform == platform and r.method == "DELETE"]
    assert len(deletes) == 2


async def test_a_token_past_its_stored_expiry_is_refreshed_before_the_delete(
    runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher, clock: Clock
) -> None:
    # X access tokens live two hours; the stored expiry says this one has run out.
    sold = await sold_listing_with_a_post(
        runtime, platforms, "x", expired=True, expires_at=clock() - timedelta(minutes=1)
    )

    report = await unpublisher.drain()

    assert report.unpublished == 1
    refresh, delete = platforms.requests  # no wasted delete with the dead token
    assert (refresh.path, delete.path) == ("/2/oauth2/token", "/2/tweets/1850000000000000001")
    assert delete.headers["authorization"] == f"Bearer {platforms.grants[0].access_token}"
    assert sold.refresh not in platforms.valid_refresh_tokens("x")


async def test_instagram_token_is_refreshed_before_it_runs_out_then_meta_refuses(
    runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher, clock: Clock
) -> None:
    # Instagram refreshes with the access token itself, which must still be valid: so it is
    # refreshed ahead of the stored expiry, never after.
    sold = await sold_listing_with_a_post(
        runtime, platforms, "instagram", expires_at=clock() + timedelta(seconds=30)
    )

    report = await unpublisher.drain()

    (grant,) = platforms.grants
    stored = await connection_of(runtime, sold.listing.user_id, "instagram")
    assert runtime.cipher.decrypt(stored.access_token_encrypted) == grant.access_token
    assert stored.expires_at is not None
    assert stored.expires_at - utcnow() > timedelta(days=59)
    refresh, delete, _read_back = platforms.requests
    assert refresh.path == "/instagram/refresh_access_token"
    assert delete.headers["authorization"] == f"Bearer {grant.access_token}"
    assert report.errors == [(sold.listing.id, "MLS-K1", INSTAGRAM_REFUSAL)]
    assert (await post_of(runtime, sold.post_id)).status == PostStatus.UNPUBLISH_FAILED


async def test_instagram_tokens_are_kept_alive_although_no_post_needs_deleting(
    runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher, clock: Clock
) -> None:
    # Instagram tokens last 60 days, have no refresh token and cannot be refreshed once
    # expired: an agent who sells nothing for two months must not have to reconnect.
    soon = await seed_user(runtime, "soon@example.com")
    later = await seed_user(runtime, "later@example.com")
    await connect_platform(
        runtime, platforms, soon, "instagram", refresh=False, expires_at=clock() + timedelta(days=3)
    )
    untouched, _ = await connect_platform(
        runtime, platforms, later, "instagram", refresh=False, expires_at=clock() + timedelta(30)
    )
    # (Every other kind of token is looked after too: tests/integration/test_token_care.py.)

    assert await unpublisher.keep_tokens_alive() == 1

    (grant,) = platforms.grants
    (request,) = platforms.requests
    assert request.path == "/instagram/refresh_access_token"
    stored = await connection_of(runtime, soon, "instagram")
    assert runtime.cipher.decrypt(stored.access_token_encrypted) == grant.access_token
    assert stored.expires_at is not None and stored.expires_at - utcnow() > timedelta(days=59)
    kept = await connection_of(runtime, later, "instagram")  # a month left: not yet
    assert runtime.cipher.decrypt(kept.access_token_encrypted) == untouched


async def test_every_run_over_every_connection_keeps_tokens_alive(
    runtime: Runtime, platforms: PlatformSandbox
) -> None:
    # The scheduler, the cron endpoint, `sync all` and the Lambda handler all come through here.
    user = await seed_user(runtime)
    await connect_platform(
        runtime, platforms, user, "instagram", refresh=False, expires_at=utcnow() + timedelta(2)
    )

    outcome, _ = await sync_everyone(runtime.engine, trigger="cron")

    assert outcome.success
    assert [r.path for r in platforms.requests] == ["/instagram/refresh_access_token"]


async def test_a_refused_keep_alive_leaves_the_connection_active_for_the_next_run(
    runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher, clock: Clock
) -> None:
    user = await seed_user(runtime)
    access, _ = await connect_platform(
        runtime, platforms, user, "instagram", refresh=False, expires_at=clock() + timedelta(days=3)
    )
    platforms.expire_token("instagram", access)  # the platform disagrees with our expiry

    with capture_logs() as logs:
        assert await unpublisher.keep_tokens_alive() == 0

    stored = await connection_of(runtime, user, "instagram")
    assert stored.state == ConnectionState.ACTIVE  # a delete will say if it is really dead
    assert runtime.cipher.decrypt(stored.access_token_encrypted) == access
    # It cannot be extended and runs out within the week: the user is told while they can act.
    assert [e["event"] for e in logs] == [
        "platform token keep-alive failed",
        "Alert MlsSyncPlatformTokenExpiring: "
        + token_expiring_alert(
            "instagram", connection_id=stored.id, user_id=user, expires_at=stored.expires_at
        ).summary,
    ]
    assert access not in str(logs)


@pytest.mark.parametrize("platform", ["facebook", "instagram", *REFRESH_GRANT])
async def test_a_refused_refresh_expires_the_connection_and_the_post_stays_published(
    platform: str, runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher
) -> None:
    # Facebook has no refresh grant; an expired Instagram token cannot be refreshed; the others'
    # refresh tokens were revoked (the user removed the app, or a year went by).
    sold = await sold_listing_with_a_post(runtime, platforms, platform, expired=True)
    if sold.refresh is not None:
        platforms.revoke_refresh_token(platform, sold.refresh)

    report = await unpublisher.drain()

    assert report.unpublished == 0
    [(listing_id, _, message)] = report.errors
    assert listing_id == sold.listing.id
    assert "connection expired. Please re-authenticate." in message
    post = await post_of(runtime, sold.post_id)
    assert (post.status, post.last_error) == (PostStatus.PUBLISHED, message)
    stored = await connection_of(runtime, sold.listing.user_id, platform)
    assert stored.state == ConnectionState.EXPIRED
    assert stored.state_message
    job = await job_of(runtime, sold.post_id)
    assert job is not None and job.attempts == 1  # waits for the user to reconnect
    assert platforms.has_post(platform, PLATFORM_POST_IDS[platform])


async def test_after_reconnecting_the_waiting_post_comes_down(
    runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher, clock: Clock
) -> None:
    sold = await sold_listing_with_a_post(runtime, platforms, "x", expired=True)
    assert sold.refresh is not None
    platforms.revoke_refresh_token("x", sold.refresh)
    await unpublisher.drain()
    requests_while_expired = len(platforms.requests)

    clock.advance(hours=1)
    waiting = await unpublisher.drain()  # still expired: the platform is not even asked
    await connect_platform(runtime, platforms, sold.listing.user_id, "x")  # the user reconnects
    clock.advance(hours=1)
    done = await unpublisher.drain()

    assert (waiting.unpublished, waiting.deferred) == (0, 1)
    assert (
        len([r for r in platforms.requests[requests_while_expired:] if r.method == "DELETE"]) == 1
    )
    assert done.unpublished == 1
    assert (await post_of(runtime, sold.post_id)).status == PostStatus.UNPUBLISHED


# -- rate limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", CALLED)
async def test_a_rate_limit_defers_the_job_and_the_next_run_finishes_it(
    platform: str,
    runtime: Runtime,
    platforms: PlatformSandbox,
    unpublisher: Unpublisher,
    clock: Clock,
) -> None:
    sold = await sold_listing_with_a_post(runtime, platforms, platform)
    platforms.throttle[platform] = 1

    throttled = await unpublisher.drain()
    too_soon = await unpublisher.drain()
    clock.advance(days=1, minutes=1)  # past any window a platform names (LinkedIn: midnight)
    next_run = await unpublisher.drain()

    assert (throttled.unpublished, throttled.deferred, throttled.errors) == (0, 1, [])
    assert (too_soon.unpublished, too_soon.deferred) == (0, 0)  # not due yet: not even tried
    finished = PostStatus.UNPUBLISH_FAILED if platform in REFUSING else PostStatus.UNPUBLISHED
    assert (await post_of(runtime, sold.post_id)).status == finished
    assert next_run.unpublished == (0 if platform in REFUSING else 1)


@pytest.mark.parametrize(
    ("platform", "wait"),
    [
        ("facebook", timedelta(minutes=5)),  # Graph's estimated_time_to_regain_access
        ("x", timedelta(minutes=15)),  # x-rate-limit-reset
        ("google_business", timedelta(seconds=60)),  # RetryInfo
        ("pinterest", timedelta(seconds=60)),  # nothing named: the outbox's own backoff
    ],
)
async def test_a_rate_limited_job_waits_as_long_as_the_platform_asks_without_counting_it(
    platform: str,
    wait: timedelta,
    runtime: Runtime,
    platforms: PlatformSandbox,
    unpublisher: Unpublisher,
    clock: Clock,
) -> None:
    sold = await sold_listing_with_a_post(runtime, platforms, platform)
    platforms.throttle[platform] = 1
    before = clock()

    await unpublisher.drain()

    job = await job_of(runtime, sold.post_id)
    assert job is not None and job.attempts == 0
    assert before + wait - timedelta(seconds=15) <= job.next_attempt_at <= clock() + wait
    assert job.last_error is not None and "rate limit" in job.last_error


async def test_a_throttled_connection_is_not_asked_again_in_the_same_drain(
    runtime: Runtime,
    platforms: PlatformSandbox,
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Clock,
) -> None:
    one_at_a_time = make_unpublisher(runtime, settings, http, clock, cap=1)
    listing = await seed_listing(runtime)
    await connect_platform(runtime, platforms, listing.user_id, "x")
    for n in range(3):
        await publish(runtime, platforms, listing, "x", post_id=f"18500000000000000{n}0")
    await queue_unpublish(runtime, listing.id)
    platforms.throttle["x"] = 1

    report = await one_at_a_time.drain()

    assert (report.unpublished, report.deferred) == (0, 3)
    assert len(platforms.requests) == 1


# -- no connection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ALL)
async def test_no_connection_warns_and_leaves_the_post_published(
    platform: str, runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher
) -> None:
    sold = await sold_listing_with_a_post(runtime, platforms, platform, connect=False)

    with capture_logs() as logs:
        report = await unpublisher.drain()

    warning = f"No {platform} connection found for unpublishing post"
    assert (report.unpublished, report.deferred, report.errors) == (0, 1, [])
    assert {"event": warning, "log_level": "warning", "platform": platform}.items() <= next(
        e for e in logs if e["log_level"] == "warning"
    ).items()
    post = await post_of(runtime, sold.post_id)
    assert (post.status, post.last_error) == (PostStatus.PUBLISHED, warning)
    assert await job_of(runtime, sold.post_id) is not None  # kept for when they connect
    assert platforms.requests == []


# -- tokens at rest ------------------------------------------------------------------------------


async def test_no_token_is_stored_in_plaintext_even_after_a_rotation(
    runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher
) -> None:
    sold = await sold_listing_with_a_post(runtime, platforms, "pinterest", expired=True)

    await unpublisher.drain()

    (grant,) = platforms.grants
    async with runtime.db.transaction() as session:
        rows = (await session.execute(text("SELECT * FROM platform_connections"))).all()
    dump = " ".join(str(value) for row in rows for value in row)
    for token in (sold.access, sold.refresh, grant.access_token, grant.refresh_token):
        assert token is not None and token not in dump


# -- concurrency -----------------------------------------------------------------------------------


async def test_deletes_run_concurrently_across_platforms_within_each_platforms_cap(
    runtime: Runtime,
    platforms: PlatformSandbox,
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Clock,
) -> None:
    capped = make_unpublisher(runtime, settings, http, clock, cap=2)
    listing = await seed_listing(runtime)
    for platform in ("x", "pinterest"):
        await connect_platform(runtime, platforms, listing.user_id, platform)
    for n in range(5):
        await publish(runtime, platforms, listing, "x", post_id=f"1850000000000000{n}")
        await publish(runtime, platforms, listing, "pinterest", post_id=f"98765432101234{n}")
    await queue_unpublish(runtime, listing.id)
    platforms.latency_seconds = 0.15

    report = await capped.drain()

    assert report.unpublished == 10
    assert platforms.peak_in_flight["x"] == 2
    assert platforms.peak_in_flight["pinterest"] == 2
    assert platforms.peak_in_flight["*"] > 2  # both platforms at once


async def test_the_cap_holds_across_drains_running_at_once(
    runtime: Runtime,
    platforms: PlatformSandbox,
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Clock,
) -> None:
    # A user-wide sync drains each MLS connection's jobs side by side: same platform, one cap.
    capped = make_unpublisher(runtime, settings, http, clock, cap=2)
    first = await seed_listing(runtime, key="K1")
    second = await seed_listing(runtime, key="K2", user_id=first.user_id)
    await connect_platform(runtime, platforms, first.user_id, "x")
    for m, listing in enumerate((first, second)):
        for n in range(3):
            await publish(runtime, platforms, listing, "x", post_id=f"185000000000000{m}{n}")
        await queue_unpublish(runtime, listing.id)
    platforms.latency_seconds = 0.15

    reports = await asyncio.gather(
        capped.drain(listing_ids=[first.id]), capped.drain(listing_ids=[second.id])
    )

    assert [r.unpublished for r in reports] == [3, 3]
    assert platforms.peak_in_flight["x"] == 2


async def test_two_drains_at_once_take_each_post_down_exactly_once(
    runtime: Runtime,
    platforms: PlatformSandbox,
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Clock,
) -> None:
    listing = await seed_listing(runtime)
    for platform in ("x", "google_business", "pinterest"):
        await connect_platform(runtime, platforms, listing.user_id, platform)
    for n in range(3):
        await publish(runtime, platforms, listing, "x", post_id=f"1850000000000000{n}")
        await publish(
            runtime,
            platforms,
            listing,
            "google_business",
            post_id=f"accounts/1/locations/2/localPosts/{n}",
        )
        await publish(runtime, platforms, listing, "pinterest", post_id=f"98765432101234{n}")
    await queue_unpublish(runtime, listing.id)
    platforms.latency_seconds = 0.05
    first = make_unpublisher(runtime, settings, http, clock)
    second = make_unpublisher(runtime, settings, http, clock)

    reports = await asyncio.gather(first.drain(), second.drain())

    assert sum(r.unpublished for r in reports) == 9
    assert len(platforms.deletes) == len(set(platforms.deletes)) == 9
    deletes = [r for r in platforms.requests if r.method == "DELETE"]
    assert len(deletes) == 9  # no post was even attempted twice


async def test_one_connections_refreshes_are_serialised_so_a_rotating_token_is_spent_once(
    runtime: Runtime, platforms: PlatformSandbox, unpublisher: Unpublisher
) -> None:
    # Four X posts, one expired token, deleted concurrently: all four are refused, but only
    # the first refreshes; the others find the new token stored and use it.
    listing = await seed_listing(runtime)
    _, refresh = await connect_platform(runtime, platforms, listing.user_id, "x", expired=True)
    for n in range(4):
        await publish(runtime, platforms, listing, "x", post_id=f"1850000000000000{n}")
    await queue_unpublish(runtime, listing.id)
    platforms.latency_seconds = 0.1  # so the four refusals, and any refreshes, overlap

    report = await unpublisher.drain()

    assert (report.unpublished, report.errors) == (4, [])
    assert platforms.refreshes == [("x", refresh)]
    stored = await connection_of(runtime, listing.user_id, "x")
    assert stored.refresh_token_encrypted is not None
    assert platforms.valid_refresh_tokens("x") == {
        runtime.cipher.decrypt(stored.refresh_token_encrypted)
    }


async def test_two_workers_refresh_one_connection_once_thanks_to_the_row_lock(
    runtime: Runtime,
    platforms: PlatformSandbox,
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Clock,
) -> None:
    if runtime.db.is_sqlite:
        pytest.skip("SQLite has no row locks; an embedded SQLite install runs one worker")
    listing = await seed_listing(runtime)
    _, refresh = await connect_platform(runtime, platforms, listing.user_id, "x", expired=True)
    for n in range(4):
        await publish(runtime, platforms, listing, "x", post_id=f"1850000000000000{n}")
    await queue_unpublish(runtime, listing.id)
    platforms.latency_seconds = 0.1  # so the refusals, and any refreshes, overlap
    # Two workers: separate processes in production, separate in-process locks here.
    first = make_unpublisher(runtime, settings, http, clock)
    second = make_unpublisher(runtime, settings, http, clock)

    reports = await asyncio.gather(first.drain(), second.drain())

    assert sum(r.unpublished for r in reports) == 4
    assert platforms.refreshes == [("x", refresh)]
    assert len(platforms.valid_refresh_tokens("x")) == 1  # the family is alive


# -- crashes -------------------------------------------------------------------------------------


async def test_a_crash_between_the_platforms_answer_and_our_commit_repeats_the_call_only(
    runtime: Runtime,
    platforms: PlatformSandbox,
    unpublisher: Unpublisher,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sold = await sold_listing_with_a_post(runtime, platforms, "x")

    async def crash(*_: object) -> None:
        raise RuntimeError("process died")

    with monkeypatch.context() as patch:
        patch.setattr(unpublisher, "_mark_unpublished", crash)
        crashed = await unpublisher.drain()
    leased = await unpublisher.drain()  # the dead worker's claim still holds
    clock.advance(seconds=DEFAULT_LEASE.total_seconds() + 1)
    recovered = await unpublisher.drain()

    assert crashed.unpublished == 0
    assert (leased.unpublished, leased.errors, leased.deferred) == (0, [], 0)
    assert recovered.unpublished == 1  # X answered "already gone"
    assert (await post_of(runtime, sold.post_id)).status == PostStatus.UNPUBLISHED
    assert platforms.deletes == [("x", "1850000000000000001")]
