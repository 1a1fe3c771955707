"""The platform clients that delete through their API (Facebook, LinkedIn, X, Google Business
Profile, Pinterest) against the platform sandbox, over real HTTP. Instagram and TikTok, which
refuse, have their own module; token refreshes are in test_social_tokens.py."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import httpx
import pytest

from mls_sync.sandbox.platforms import Fault, PlatformSandbox
from mls_sync.social.base import DeleteOutcome, ErrorKind, Platform, PlatformClient, PlatformError
from mls_sync.social.facebook import FacebookClient
from mls_sync.social.linkedin import LinkedInClient
from mls_sync.social.registry import INSTAGRAM_VIA_FACEBOOK, build_platform_clients

TOKEN = "user-token-s3cr3t-0123456789"
POST_IDS = {
    Platform.FACEBOOK: "104857600_555000111",
    Platform.LINKEDIN: "urn:li:share:7180000000000000001",
    Platform.X: "1850000000000000001",
    Platform.GOOGLE_BUSINESS: "accounts/1001/locations/2002/localPosts/3003",
    Platform.PINTEREST: "987654321012345678",
}
PLATFORMS = list(POST_IDS)
# Seconds each platform says to wait while throttled: Graph's 5-minute estimate, LinkedIn's
# daily quota (until midnight UTC), X's 15-minute window reset, Google's RetryInfo; Pinterest
# names no time, so the outbox's own backoff applies.
RETRY_AFTER_RANGE: dict[Platform, tuple[float, float] | None] = {
    Platform.FACEBOOK: (300.0, 300.0),
    Platform.LINKEDIN: (0.0, 86_400.0),
    Platform.X: (890.0, 900.0),
    Platform.GOOGLE_BUSINESS: (60.0, 60.0),
    Platform.PINTEREST: None,
}


def clients_at(http: httpx.AsyncClient, url: str) -> dict[Platform, PlatformClient]:
    return build_platform_clients(http, {platform: url for platform in Platform})


def publish(platforms: PlatformSandbox, platform: Platform) -> str:
    platforms.add_token(platform, TOKEN)
    platforms.add_post(platform, POST_IDS[platform])
    return POST_IDS[platform]


async def delete_expecting_error(client: PlatformClient, post_id: str) -> PlatformError:
    with pytest.raises(PlatformError) as caught:
        await client.delete_post(post_id, TOKEN)
    assert TOKEN not in str(caught.value)
    return caught.value


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_delete_removes_the_post(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    post_id = publish(platforms, platform)

    outcome = await clients_at(http, platforms_url)[platform].delete_post(post_id, TOKEN)

    assert outcome is DeleteOutcome.DELETED
    assert not platforms.has_post(platform, post_id)
    assert platforms.deletes == [(platform, post_id)]


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_deleting_a_post_the_platform_never_had_is_already_gone(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(platform, TOKEN)

    outcome = await clients_at(http, platforms_url)[platform].delete_post(POST_IDS[platform], TOKEN)

    assert outcome is DeleteOutcome.ALREADY_GONE
    assert platforms.deletes == []


@pytest.mark.parametrize(
    ("platform", "second_outcome"),
    [
        (Platform.FACEBOOK, DeleteOutcome.ALREADY_GONE),
        # LinkedIn deletes are idempotent: a second DELETE answers 204 like the first.
        (Platform.LINKEDIN, DeleteOutcome.DELETED),
        (Platform.X, DeleteOutcome.ALREADY_GONE),
        (Platform.GOOGLE_BUSINESS, DeleteOutcome.ALREADY_GONE),
        (Platform.PINTEREST, DeleteOutcome.ALREADY_GONE),
    ],
)
async def test_deleting_twice_removes_the_post_exactly_once(
    platform: Platform,
    second_outcome: DeleteOutcome,
    platforms: PlatformSandbox,
    platforms_url: str,
    http: httpx.AsyncClient,
) -> None:
    post_id = publish(platforms, platform)
    client = clients_at(http, platforms_url)[platform]

    await client.delete_post(post_id, TOKEN)
    assert await client.delete_post(post_id, TOKEN) is second_outcome

    assert platforms.deletes == [(platform, post_id)]


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_expired_token_is_an_auth_error_and_leaves_the_post(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    post_id = publish(platforms, platform)
    platforms.expire_token(platform, TOKEN)

    error = await delete_expecting_error(clients_at(http, platforms_url)[platform], post_id)

    assert error.kind is ErrorKind.AUTH
    assert error.status_code in (400, 401)  # Graph answers OAuthException with 400
    assert platforms.has_post(platform, post_id)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_unknown_token_is_an_auth_error(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_post(platform, POST_IDS[platform])

    error = await delete_expecting_error(
        clients_at(http, platforms_url)[platform], POST_IDS[platform]
    )

    assert error.kind is ErrorKind.AUTH


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_throttled_delete_is_rate_limited_with_retry_after_then_succeeds(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    post_id = publish(platforms, platform)
    platforms.throttle[platform] = 1
    client = clients_at(http, platforms_url)[platform]

    error = await delete_expecting_error(client, post_id)

    assert error.kind is ErrorKind.RATE_LIMITED
    expected = RETRY_AFTER_RANGE[platform]
    if expected is None:
        assert error.retry_after is None
    else:
        low, high = expected
        assert error.retry_after is not None and low <= error.retry_after <= high
    assert await client.delete_post(post_id, TOKEN) is DeleteOutcome.DELETED


async def test_linkedin_daily_quota_is_retried_after_midnight_utc(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    post_id = publish(platforms, Platform.LINKEDIN)
    platforms.throttle[Platform.LINKEDIN] = 1
    eleven_pm = datetime(2025, 3, 14, 23, 0, tzinfo=UTC)
    client = LinkedInClient(http, platforms_url, clock=lambda: eleven_pm)

    error = await delete_expecting_error(client, post_id)

    assert error.retry_after == 3600.0


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.BAD_GATEWAY_HTML, Fault.NOT_JSON])
async def test_server_errors_and_non_json_answers_are_transient(
    platform: Platform,
    fault: Fault,
    platforms: PlatformSandbox,
    platforms_url: str,
    http: httpx.AsyncClient,
) -> None:
    post_id = publish(platforms, platform)
    platforms.fail_next(platform, fault)

    error = await delete_expecting_error(clients_at(http, platforms_url)[platform], post_id)

    assert error.kind is ErrorKind.TRANSIENT
    assert platforms.has_post(platform, post_id)
    if fault is Fault.NOT_JSON:
        assert "not JSON" in error.message


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_unreachable_server_is_a_transient_network_error(
    platform: Platform, http: httpx.AsyncClient
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and is now closed
        probe.bind(("127.0.0.1", 0))
        closed_url = f"http://127.0.0.1:{probe.getsockname()[1]}"

    error = await delete_expecting_error(clients_at(http, closed_url)[platform], POST_IDS[platform])

    assert error.kind is ErrorKind.TRANSIENT
    assert error.message == "Network error: Connection failed"


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_slow_answer_is_reported_as_request_timeout(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str
) -> None:
    post_id = publish(platforms, platform)
    platforms.slow_seconds = 0.5
    platforms.fail_next(platform, Fault.SLOW)

    async with httpx.AsyncClient(timeout=0.1) as impatient:
        error = await delete_expecting_error(
            clients_at(impatient, platforms_url)[platform], post_id
        )

    assert error.kind is ErrorKind.TRANSIENT
    assert error.message == "Network error: Request timeout"


async def test_facebook_request_uses_versioned_path_and_page_token(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    post_id = publish(platforms, Platform.FACEBOOK)

    await FacebookClient(http, platforms_url, api_version="v25.0").delete_post(post_id, TOKEN)

    (request,) = platforms.requests
    assert (request.method, request.path) == ("DELETE", f"/v25.0/{post_id}")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_linkedin_request_encodes_the_urn_and_sends_versioned_restli_headers(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    publish(platforms, Platform.LINKEDIN)

    await LinkedInClient(http, platforms_url, api_version="202609").delete_post(
        "urn:li:share:7180000000000000001", TOKEN
    )

    (request,) = platforms.requests
    assert request.path == "/rest/posts/urn%3Ali%3Ashare%3A7180000000000000001"
    assert request.headers["linkedin-version"] == "202609"
    assert request.headers["x-restli-protocol-version"] == "2.0.0"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_x_request_deletes_by_tweet_id_with_user_token(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    post_id = publish(platforms, Platform.X)

    await clients_at(http, platforms_url)[Platform.X].delete_post(post_id, TOKEN)

    (request,) = platforms.requests
    assert (request.method, request.path) == ("DELETE", f"/2/tweets/{post_id}")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_token_echoed_back_by_a_platform_is_redacted_from_the_message() -> None:
    # Graph has answered "Malformed access token <token>"; such text must not reach logs or UI.
    def echo(request: httpx.Request) -> httpx.Response:
        error = {
            "message": f"Malformed access token {TOKEN}",
            "type": "OAuthException",
            "code": 190,
        }
        return httpx.Response(400, json={"error": error})

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as http:
        error = await delete_expecting_error(FacebookClient(http), "1_2")

    assert error.kind is ErrorKind.AUTH
    assert "[redacted]" in error.message


async def test_registry_builds_one_client_per_supported_platform(
    http: httpx.AsyncClient,
) -> None:
    clients = build_platform_clients(http)

    # One per platform, and Instagram's second login (Facebook Login deletes on Facebook's host).
    assert set(clients) == set(Platform) | {INSTAGRAM_VIA_FACEBOOK}
    assert all(clients[platform].platform is platform for platform in Platform)
    assert clients[INSTAGRAM_VIA_FACEBOOK].platform is Platform.INSTAGRAM
    assert [p for p, client in clients.items() if not client.supports_delete] == [Platform.TIKTOK]


async def test_google_request_deletes_the_local_post_by_resource_name(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    post_id = publish(platforms, Platform.GOOGLE_BUSINESS)

    await clients_at(http, platforms_url)[Platform.GOOGLE_BUSINESS].delete_post(post_id, TOKEN)

    (request,) = platforms.requests
    assert (request.method, request.path) == ("DELETE", f"/v4/{post_id}")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


async def test_google_refuses_to_send_what_is_not_a_local_post_name(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    client = clients_at(http, platforms_url)[Platform.GOOGLE_BUSINESS]

    error = await delete_expecting_error(client, "accounts/1/locations/2/../../admin")

    assert error.kind is ErrorKind.PERMANENT
    assert platforms.requests == []


async def test_pinterest_request_deletes_the_pin_with_user_token(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    post_id = publish(platforms, Platform.PINTEREST)

    await clients_at(http, platforms_url)[Platform.PINTEREST].delete_post(post_id, TOKEN)

    (request,) = platforms.requests
    assert (request.method, request.path) == ("DELETE", f"/v5/pins/{post_id}")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
