"""Instagram and TikTok, whose APIs do not take published posts down: the clients say so plainly,
never a silent success. Against the platform sandbox, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from mls_sync.sandbox.platforms import Fault, PlatformSandbox
from mls_sync.social.base import DeleteOutcome, ErrorKind, PlatformError
from mls_sync.social.instagram import REFUSAL as INSTAGRAM_REFUSAL
from mls_sync.social.instagram import InstagramClient
from mls_sync.social.tiktok import REFUSAL as TIKTOK_REFUSAL
from mls_sync.social.tiktok import TikTokClient

TOKEN = "ig-user-token-s3cr3t-0123456789"
MEDIA_ID = "17895695668004550"


@pytest.fixture
def instagram(http: httpx.AsyncClient, platforms_url: str) -> InstagramClient:
    return InstagramClient(http, f"{platforms_url}/instagram", api_version="v25.0")


def published(platforms: PlatformSandbox) -> None:
    platforms.add_token("instagram", TOKEN)
    platforms.add_post("instagram", MEDIA_ID)


async def delete_expecting_error(client: InstagramClient) -> PlatformError:
    with pytest.raises(PlatformError) as caught:
        await client.delete_post(MEDIA_ID, TOKEN)
    assert TOKEN not in str(caught.value)
    return caught.value


async def test_instagram_refusal_is_reported_for_a_person_and_the_post_stays(
    platforms: PlatformSandbox, instagram: InstagramClient
) -> None:
    published(platforms)

    error = await delete_expecting_error(instagram)

    assert error.kind is ErrorKind.PERMANENT
    assert error.message == (
        "Instagram does not allow deleting this post through its API: remove it in the app"
    )
    assert error.message == INSTAGRAM_REFUSAL
    assert platforms.has_post("instagram", MEDIA_ID)
    # Graph's "cannot load" answer is ambiguous, so the media was read back before deciding.
    delete, read = platforms.requests
    assert (delete.method, delete.path) == ("DELETE", f"/instagram/v25.0/{MEDIA_ID}")
    assert (read.method, read.path, read.query) == (
        "GET",
        f"/instagram/v25.0/{MEDIA_ID}",
        "fields=id",
    )
    assert delete.headers["authorization"] == f"Bearer {TOKEN}"


async def test_instagram_media_that_is_gone_counts_as_already_gone(
    platforms: PlatformSandbox, instagram: InstagramClient
) -> None:
    platforms.add_token("instagram", TOKEN)  # the agent removed the post in the app

    assert await instagram.delete_post(MEDIA_ID, TOKEN) is DeleteOutcome.ALREADY_GONE


async def test_instagram_delete_counts_only_when_meta_says_success(
    platforms: PlatformSandbox, instagram: InstagramClient
) -> None:
    published(platforms)
    platforms.instagram_allows_delete = True

    assert await instagram.delete_post(MEDIA_ID, TOKEN) is DeleteOutcome.DELETED
    assert platforms.deletes == [("instagram", MEDIA_ID)]


async def test_instagram_expired_token_is_an_auth_error(
    platforms: PlatformSandbox, instagram: InstagramClient
) -> None:
    published(platforms)
    platforms.expire_token("instagram", TOKEN)

    error = await delete_expecting_error(instagram)

    assert error.kind is ErrorKind.AUTH
    assert platforms.has_post("instagram", MEDIA_ID)


async def test_instagram_throttle_is_rate_limited_for_as_long_as_graph_estimates(
    platforms: PlatformSandbox, instagram: InstagramClient
) -> None:
    published(platforms)
    platforms.throttle["instagram"] = 1

    error = await delete_expecting_error(instagram)

    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after == 300.0


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.BAD_GATEWAY_HTML, Fault.NOT_JSON])
async def test_instagram_trouble_is_transient(
    fault: Fault, platforms: PlatformSandbox, instagram: InstagramClient
) -> None:
    published(platforms)
    platforms.fail_next("instagram", fault)

    error = await delete_expecting_error(instagram)

    assert error.kind is ErrorKind.TRANSIENT


async def test_tiktok_refuses_without_calling_tiktok(
    platforms: PlatformSandbox, http: httpx.AsyncClient, platforms_url: str
) -> None:
    platforms.add_post("tiktok", "7300000000000000001")
    client = TikTokClient(http, token_url=f"{platforms_url}/v2/oauth/token/")

    with pytest.raises(PlatformError) as caught:
        await client.delete_post("7300000000000000001", "any-token")

    assert caught.value.kind is ErrorKind.PERMANENT
    assert caught.value.message == (
        "TikTok does not allow deleting posts through its API: remove it in the app"
    )
    assert caught.value.message == TIKTOK_REFUSAL
    assert client.supports_delete is False
    assert platforms.requests == []
    assert platforms.has_post("tiktok", "7300000000000000001")
