"""Tokens kept alive until the sale: after every run over everyone, each platform connection is
refreshed, verified or flagged, about once a day, by what its platform allows.

Over real HTTP against the platform sandbox, whose tokens expire on its clock (the test's), on
every storage backend.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from structlog.testing import capture_logs

from conftest import ALL_BACKENDS
from factories import (
    AlertsSpy,
    Clock,
    connect_platform,
    connection_of,
    make_unpublisher,
    post_of,
    publish,
    queue_unpublish,
    seed_listing,
    seed_user,
)
from factories import with_sandbox_platforms as sandboxed
from mls_sync.config import Settings
from mls_sync.domain.status import ConnectionState, PostStatus
from mls_sync.observability.alerts import PLATFORM_TOKEN_EXPIRING
from mls_sync.observability.metrics import METRICS
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.services.dashboard import EXPIRING, dashboard_data
from mls_sync.social.base import Login
from mls_sync.sync.runs import sync_everyone
from mls_sync.sync.unpublish import Unpublisher

pytestmark = pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)

A_DAY_LATER = {"hours": 25}


@pytest.fixture
def settings(settings: Settings, platforms_url: str) -> Settings:
    return sandboxed(settings, platforms_url)


@pytest.fixture
def clock(platforms: PlatformSandbox) -> Clock:
    clock = Clock()
    platforms.clock = clock  # the platforms' tokens die on the same clock as ours
    return clock


@pytest.fixture
def alerts() -> AlertsSpy:
    return AlertsSpy()


@pytest.fixture
def outbox(
    runtime: Runtime, settings: Settings, http: httpx.AsyncClient, clock: Clock, alerts: AlertsSpy
) -> Unpublisher:
    return make_unpublisher(runtime, settings, http, clock, alerts=alerts)


async def connect(
    runtime: Runtime,
    platforms: PlatformSandbox,
    user_id: str,
    platform: str,
    *,
    clock: Clock,
    lasts: timedelta | None,
    refresh: bool = False,
    login: Login | None = None,
    token_platform: str | None = None,
) -> tuple[str, str | None]:
    """A connection whose token dies after `lasts` on the sandbox and in our records alike."""
    return await connect_platform(
        runtime,
        platforms,
        user_id,
        platform,
        refresh=refresh,
        expires_at=clock() + lasts if lasts is not None else None,
        dies_on_schedule=True,
        login=login,
        token_platform=token_platform,
    )


# -- refreshable tokens are refreshed ahead, about once a day -----------------------------------


# How long each platform's refreshed access tokens last (the sandbox answers as they do).
ACCESS_LASTS = {
    "x": timedelta(hours=2),
    "google_business": timedelta(hours=1),
    "pinterest": timedelta(days=30),
    "linkedin": timedelta(days=60),
}


@pytest.mark.parametrize("platform", ACCESS_LASTS)
async def test_a_token_with_a_refresh_token_is_refreshed_ahead_at_most_once_a_day(
    runtime: Runtime,
    platforms: PlatformSandbox,
    outbox: Unpublisher,
    clock: Clock,
    platform: str,
) -> None:
    user = await seed_user(runtime)
    _, first_refresh = await connect(
        runtime, platforms, user, platform, clock=clock, lasts=timedelta(hours=1), refresh=True
    )

    assert await outbox.keep_tokens_alive() == 1
    assert await outbox.keep_tokens_alive() == 0  # looked after already today
    # The next refresh comes a day later, or once the new token nears its end (30-60 days).
    clock.advance(hours=25)
    refreshed_next_day = await outbox.keep_tokens_alive()
    assert refreshed_next_day == (1 if ACCESS_LASTS[platform] < timedelta(days=7) else 0)
    if not refreshed_next_day:
        clock.advance(seconds=(ACCESS_LASTS[platform] - timedelta(days=7)).total_seconds())
        assert await outbox.keep_tokens_alive() == 1

    assert len(platforms.grants) == 2
    stored = await connection_of(runtime, user, platform)
    assert stored.state == ConnectionState.ACTIVE
    # Rotated refresh tokens were stored with the answer that brought them.
    refresh = runtime.cipher.decrypt(stored.refresh_token_encrypted or "")
    assert refresh == platforms.grants[-1].refresh_token
    assert (refresh != first_refresh) == (platform in {"x", "pinterest"})


async def test_a_refreshed_token_still_deletes_when_the_sale_comes_after_the_old_one_died(
    runtime: Runtime, platforms: PlatformSandbox, outbox: Unpublisher, clock: Clock
) -> None:
    listing = await seed_listing(runtime)
    await connect(
        runtime,
        platforms,
        listing.user_id,
        "x",
        clock=clock,
        lasts=timedelta(hours=1),
        refresh=True,
    )
    assert await outbox.keep_tokens_alive() == 1  # a new token, good for two hours
    clock.advance(hours=1, minutes=30)  # the first access token is dead on X now
    post_id = await publish(runtime, platforms, listing, "x")
    await queue_unpublish(runtime, listing.id)

    report = await outbox.drain()

    assert report.unpublished == 1
    assert len(platforms.grants) == 1  # the delete used the token the care had fetched
    assert (await post_of(runtime, post_id)).status == PostStatus.UNPUBLISHED


async def test_a_dead_refresh_token_is_found_before_the_sale_and_flagged_for_reconnecting(
    runtime: Runtime, platforms: PlatformSandbox, outbox: Unpublisher, clock: Clock
) -> None:
    # Google refresh tokens of apps in testing mode die after 7 days.
    user = await seed_user(runtime)
    _, refresh = await connect(
        runtime,
        platforms,
        user,
        "google_business",
        clock=clock,
        lasts=timedelta(hours=1),
        refresh=True,
    )
    assert refresh is not None
    platforms.revoke_refresh_token("google_business", refresh)
    clock.advance(hours=2)  # the access token is dead too

    assert await outbox.keep_tokens_alive() == 0

    stored = await connection_of(runtime, user, "google_business")
    assert stored.state == ConnectionState.EXPIRED
    assert stored.state_message is not None and "invalid_grant" in stored.state_message


# -- Page tokens are verified -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "login", "token_platform"),
    [("facebook", None, None), ("instagram", Login.FACEBOOK, "facebook")],
    ids=["facebook", "instagram-facebook-login"],
)
async def test_a_page_token_is_verified_daily_and_a_lapsed_one_is_flagged(
    runtime: Runtime,
    platforms: PlatformSandbox,
    outbox: Unpublisher,
    clock: Clock,
    platform: str,
    login: Login | None,
    token_platform: str | None,
) -> None:
    user = await seed_user(runtime)
    access, _ = await connect(
        runtime,
        platforms,
        user,
        platform,
        clock=clock,
        lasts=None,
        login=login,
        token_platform=token_platform,
    )

    assert await outbox.keep_tokens_alive() == 1
    [verify] = platforms.requests
    assert (verify.method, verify.path.rsplit("/", 1)[-1]) == ("GET", "me")
    assert (await connection_of(runtime, user, platform)).state == ConnectionState.ACTIVE

    platforms.lapse_permission(token_platform or platform, access, 200)  # 90 days unused
    clock.advance(**A_DAY_LATER)
    assert await outbox.keep_tokens_alive() == 0

    stored = await connection_of(runtime, user, platform)
    assert stored.state == ConnectionState.EXPIRED
    assert platforms.refreshes == []


# -- tokens that cannot be refreshed are flagged days ahead --------------------------------------


async def test_a_token_that_cannot_be_refreshed_is_flagged_once_days_before_it_dies(
    runtime: Runtime,
    platforms: PlatformSandbox,
    outbox: Unpublisher,
    clock: Clock,
    alerts: AlertsSpy,
) -> None:
    # LinkedIn member tokens last 60 days; only approved apps get refresh tokens.
    user = await seed_user(runtime)
    await connect(runtime, platforms, user, "linkedin", clock=clock, lasts=timedelta(days=30))
    expiring = ("mls_sync_platform_tokens_expiring_total", {"platform": "linkedin"})
    warned_before = METRICS.value(*expiring)

    assert await outbox.keep_tokens_alive() == 0
    assert alerts.sent == []  # a month left: not yet

    clock.advance(days=26)  # four days left
    await outbox.keep_tokens_alive()
    stored = await connection_of(runtime, user, "linkedin")
    [alert] = alerts.sent
    assert alert.rule == PLATFORM_TOKEN_EXPIRING and alert.severity == "warning"
    assert alert.details["platformConnectionId"] == stored.id
    assert stored.expires_at is not None
    assert f"{stored.expires_at:%Y-%m-%d}" in alert.summary
    assert stored.state == ConnectionState.ACTIVE  # it still works until then
    assert METRICS.value(*expiring) == warned_before + 1

    clock.advance(**A_DAY_LATER)
    await outbox.keep_tokens_alive()
    assert len(alerts.sent) == 1  # once for this expiry, not every run

    # Reconnecting with a fresh token clears the flag; its own expiry is announced afresh.
    await connect(runtime, platforms, user, "linkedin", clock=clock, lasts=timedelta(days=2))
    await outbox.keep_tokens_alive()
    assert len(alerts.sent) == 2


async def test_the_dashboard_lists_an_expiring_token_with_its_date(
    runtime: Runtime,
    platforms: PlatformSandbox,
    outbox: Unpublisher,
    clock: Clock,
    database_url: str,
) -> None:
    if database_url.startswith("dynamodb"):
        pytest.skip("the dashboard page runs on SQL storage")
    user = await seed_user(runtime)
    await connect(runtime, platforms, user, "linkedin", clock=clock, lasts=timedelta(days=3))

    await outbox.keep_tokens_alive()

    stored = await connection_of(runtime, user, "linkedin")
    async with runtime.db.transaction() as session:
        data = await dashboard_data(session, user)
    [row] = data.needs_reauth
    assert (row.kind, row.state) == ("linkedin", EXPIRING)
    assert stored.expires_at is not None
    assert row.message is not None and f"{stored.expires_at:%Y-%m-%d %H:%M}" in row.message


async def test_every_run_over_everyone_cares_for_tokens_and_alerts_through_the_monitor(
    runtime: Runtime, platforms: PlatformSandbox
) -> None:
    user = await seed_user(runtime)
    await connect(runtime, platforms, user, "linkedin", clock=Clock(), lasts=timedelta(days=2))
    fired_before = METRICS.value("mls_sync_alerts_fired_total", {"rule": PLATFORM_TOKEN_EXPIRING})

    with capture_logs() as logs:
        outcome, _ = await sync_everyone(runtime.engine, trigger="cron")

    assert outcome.success
    [event] = [e for e in logs if e.get("alert") == PLATFORM_TOKEN_EXPIRING]
    assert event["log_level"] == "warning" and event["platform"] == "linkedin"
    assert (
        METRICS.value("mls_sync_alerts_fired_total", {"rule": PLATFORM_TOKEN_EXPIRING})
        == fired_before + 1
    )
