"""The platforms as they behave today (2026-12), through the unpublish outbox: retired API
versions, Instagram through Facebook Login, and Graph answers that mean "reconnect".

Everything runs over real HTTP against the platform sandbox, which refuses retired versions as
LinkedIn (426 NONEXISTENT_VERSION) and Graph (code 2635) do, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import httpx
import pytest

from factories import (
    PLATFORM_POST_IDS,
    AlertsSpy,
    Clock,
    connect_platform,
    connection_of,
    job_of,
    make_unpublisher,
    post_of,
    publish,
    queue_unpublish,
    seed_listing,
    with_sandbox_platforms,
)
from mls_sync.config import Settings
from mls_sync.domain.status import ConnectionState, PostStatus
from mls_sync.observability.alerts import PLATFORM_API_VERSION_RETIRED
from mls_sync.observability.metrics import METRICS
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.social.base import Login
from mls_sync.store.models import Listing
from mls_sync.sync.unpublish import Unpublisher

# Instagram media through Facebook Login: the sandbox knows the Page token as Facebook's.
IG_VIA_FACEBOOK = ("instagram", Login.FACEBOOK, "facebook")


@pytest.fixture
def settings(settings: Settings, platforms_url: str) -> Settings:
    return with_sandbox_platforms(settings, platforms_url)


def outbox(
    runtime: Runtime,
    settings: Settings,
    http: httpx.AsyncClient,
    alerts: AlertsSpy,
    clock: Clock | None = None,
    *,
    one_at_a_time: bool = False,
) -> Unpublisher:
    cap = 1 if one_at_a_time else 4
    return make_unpublisher(runtime, settings, http, clock or Clock(), cap=cap, alerts=alerts)


def with_versions(settings: Settings, **versions: str) -> Settings:
    return Settings.model_validate({**settings.model_dump(), **versions})


async def sold_post(
    runtime: Runtime,
    platforms: PlatformSandbox,
    platform: str,
    *,
    login: Login | None = None,
    token_platform: str | None = None,
    listing: Listing | None = None,
    post_id: str | None = None,
) -> tuple[Listing, str, str]:
    """A sold listing's published post and its queued job; (listing, our post id, token).

    `token_platform`: where the sandbox knows the token (a Page token is Facebook's)."""
    listing = listing or await seed_listing(runtime)
    access, _ = await connect_platform(
        runtime,
        platforms,
        listing.user_id,
        platform,
        refresh=False,
        login=login,
        token_platform=token_platform,
    )
    post = await publish(runtime, platforms, listing, platform, post_id=post_id)
    await queue_unpublish(runtime, listing.id)
    return listing, post, access


# -- the defaults are versions the platforms serve today --------------------------------------


@pytest.mark.parametrize(
    ("platform", "login", "token_platform"),
    [("linkedin", None, None), ("facebook", None, None), IG_VIA_FACEBOOK],
    ids=["linkedin", "facebook", "instagram-facebook-login"],
)
async def test_a_sold_listings_post_comes_down_with_todays_default_versions(
    runtime: Runtime,
    platforms: PlatformSandbox,
    settings: Settings,
    http: httpx.AsyncClient,
    platform: str,
    login: Login | None,
    token_platform: str | None,
) -> None:
    # The sandbox refuses retired versions (202411 among them) as the platforms do: this
    # fails the day a default is left behind.
    assert "202411" in platforms.retired_versions["linkedin"]
    _, post_id, _ = await sold_post(
        runtime, platforms, platform, login=login, token_platform=token_platform
    )
    alerts = AlertsSpy()

    report = await outbox(runtime, settings, http, alerts).drain()

    assert report.unpublished == 1 and report.errors == [] and alerts.sent == []
    assert (await post_of(runtime, post_id)).status == PostStatus.UNPUBLISHED
    assert not platforms.has_post(platform, PLATFORM_POST_IDS[platform])


async def test_instagram_with_facebook_login_deletes_on_facebooks_host_with_the_page_token(
    runtime: Runtime, platforms: PlatformSandbox, settings: Settings, http: httpx.AsyncClient
) -> None:
    _, _, page_token = await sold_post(
        runtime, platforms, "instagram", login=Login.FACEBOOK, token_platform="facebook"
    )

    await outbox(runtime, settings, http, AlertsSpy()).drain()

    [delete] = [r for r in platforms.requests if r.method == "DELETE"]
    assert delete.path == f"/{settings.facebook_api_version}/{PLATFORM_POST_IDS['instagram']}"
    assert delete.headers["authorization"] == f"Bearer {page_token}"
    assert platforms.deletes == [("instagram", PLATFORM_POST_IDS["instagram"])]


async def test_instagram_login_still_reports_metas_refusal(
    runtime: Runtime, platforms: PlatformSandbox, settings: Settings, http: httpx.AsyncClient
) -> None:
    _, post_id, _ = await sold_post(runtime, platforms, "instagram")  # login defaults to instagram

    await outbox(runtime, settings, http, AlertsSpy()).drain()

    post = await post_of(runtime, post_id)
    assert post.status == PostStatus.UNPUBLISH_FAILED
    assert post.last_error is not None and "remove it in the app" in post.last_error


# -- a retired version is configuration: deferred, uncounted, alerted once ----------------------


@pytest.mark.parametrize(
    ("platform", "overrides", "setting"),
    [
        ("linkedin", {"linkedin_api_version": "202411"}, "MLS_SYNC_LINKEDIN_API_VERSION"),
        ("facebook", {"facebook_api_version": "v20.0"}, "MLS_SYNC_FACEBOOK_API_VERSION"),
    ],
)
async def test_a_retired_version_defers_the_job_uncounted_and_alerts_once_naming_the_setting(
    runtime: Runtime,
    platforms: PlatformSandbox,
    settings: Settings,
    http: httpx.AsyncClient,
    platform: str,
    overrides: dict[str, str],
    setting: str,
) -> None:
    stale = with_versions(settings, **overrides)
    [version] = overrides.values()
    first, first_post, _ = await sold_post(runtime, platforms, platform)
    # A second user's post on the same platform: the drain does not knock again for it.
    second = await seed_listing(runtime, key="K2")
    _, second_post, _ = await sold_post(runtime, platforms, platform, listing=second, post_id="p2")
    refused_before = METRICS.value(
        "mls_sync_platform_api_version_refusals_total", {"platform": platform, "version": version}
    )
    alerts, clock = AlertsSpy(), Clock()
    # One delete at a time, so that the second job starts after the first one's answer.
    report = await outbox(runtime, stale, http, alerts, clock, one_at_a_time=True).drain()

    assert report.unpublished == 0 and report.deferred == 2 and report.errors == []
    assert len([r for r in platforms.requests if r.method == "DELETE"]) == 1
    for post_id, listing in ((first_post, first), (second_post, second)):
        post = await post_of(runtime, post_id)
        assert post.status == PostStatus.PUBLISHED
        job = await job_of(runtime, post_id)
        assert job is not None and job.attempts == 0  # not the post's fault
        connection = await connection_of(runtime, listing.user_id, platform)
        assert connection.state == ConnectionState.ACTIVE  # nor the user's
    [alert] = alerts.sent
    assert alert.rule == PLATFORM_API_VERSION_RETIRED and alert.severity == "critical"
    assert setting in alert.summary and version in alert.summary
    assert alert.payload()["apiVersion"] == version

    # The next run, still misconfigured: deferred again, and no second alert.
    clock.advance(minutes=2)
    report = await outbox(runtime, stale, http, alerts, clock, one_at_a_time=True).drain()
    assert report.deferred == 2 and len(alerts.sent) == 1
    assert (
        METRICS.value(
            "mls_sync_platform_api_version_refusals_total",
            {"platform": platform, "version": version},
        )
        == refused_before + 2
    )

    # Once the setting is fixed, the waiting posts come down.
    clock.advance(minutes=2)
    report = await outbox(runtime, settings, http, alerts, clock).drain()
    assert report.unpublished == 2


# -- Graph answers read correctly -------------------------------------------------------------


async def test_facebook_code_100_on_a_post_still_readable_asks_the_user_to_reconnect(
    runtime: Runtime, platforms: PlatformSandbox, settings: Settings, http: httpx.AsyncClient
) -> None:
    listing, post_id, _ = await sold_post(runtime, platforms, "facebook")
    platforms.deny_delete("facebook", PLATFORM_POST_IDS["facebook"])  # pages_manage_posts lapsed

    report = await outbox(runtime, settings, http, AlertsSpy()).drain()

    assert report.unpublished == 0
    post = await post_of(runtime, post_id)
    assert post.status == PostStatus.PUBLISHED  # never a silent success
    [(_, _, message)] = report.errors
    assert message.startswith("Facebook connection expired. Please re-authenticate.")
    assert "pages_manage_posts" in message
    connection = await connection_of(runtime, listing.user_id, "facebook")
    assert connection.state == ConnectionState.EXPIRED  # shown on the dashboard
    reads = [r for r in platforms.requests if r.method == "GET"]
    assert [r.query for r in reads] == ["fields=id"]


async def test_facebook_code_100_on_a_post_that_is_gone_counts_as_unpublished(
    runtime: Runtime, platforms: PlatformSandbox, settings: Settings, http: httpx.AsyncClient
) -> None:
    _, post_id, _ = await sold_post(runtime, platforms, "facebook")
    platforms.take("facebook", PLATFORM_POST_IDS["facebook"])  # deleted by hand on Facebook

    report = await outbox(runtime, settings, http, AlertsSpy()).drain()

    assert report.unpublished == 1
    assert (await post_of(runtime, post_id)).status == PostStatus.UNPUBLISHED


@pytest.mark.parametrize(
    "lapse",
    [("permission", 10), ("permission", 200), ("session", 458), ("session", 460), ("session", 467)],
    ids=lambda lapse: f"{lapse[0]}-{lapse[1]}",
)
@pytest.mark.parametrize(
    ("platform", "login", "token_platform"),
    [("facebook", None, None), IG_VIA_FACEBOOK],
    ids=["facebook", "instagram-facebook-login"],
)
async def test_a_lapsed_permission_or_session_asks_to_reconnect_and_the_post_stays_up(
    runtime: Runtime,
    platforms: PlatformSandbox,
    settings: Settings,
    http: httpx.AsyncClient,
    lapse: tuple[str, int],
    platform: str,
    login: Login | None,
    token_platform: str | None,
) -> None:
    listing, post_id, token = await sold_post(
        runtime, platforms, platform, login=login, token_platform=token_platform
    )
    kind, code = lapse
    if kind == "permission":
        platforms.lapse_permission(token_platform or platform, token, code)
    else:
        platforms.invalidate_session(token_platform or platform, token, code)

    report = await outbox(runtime, settings, http, AlertsSpy()).drain()

    post = await post_of(runtime, post_id)
    assert post.status == PostStatus.PUBLISHED
    job = await job_of(runtime, post_id)
    assert job is not None  # waits for the user to reconnect
    [(_, _, message)] = report.errors
    assert "Please re-authenticate." in message and token not in message
    connection = await connection_of(runtime, listing.user_id, platform)
    assert connection.state == ConnectionState.EXPIRED
    assert platforms.refreshes == []  # a refresh cannot mend it: none is tried
