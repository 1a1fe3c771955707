"""Every platform client's token refresh against the sandbox's token endpoints, over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mls_sync.config import GRAPH_DEFAULT
from mls_sync.sandbox.platforms import Fault, PlatformSandbox
from mls_sync.social.base import ErrorKind, Platform, PlatformClient, PlatformError, Tokens
from mls_sync.social.facebook import FacebookClient
from mls_sync.social.registry import OAuthApp, PlatformConfig, build_platform_clients
from mls_sync.social.x import XClient

ACCESS, REFRESH = "old-access-token-0123456789", "old-refresh-token-0123456789"
# Platforms that refresh with a refresh token, and whether they rotate it.
REFRESH_GRANT = {
    Platform.LINKEDIN: False,
    Platform.X: True,
    Platform.GOOGLE_BUSINESS: False,
    Platform.PINTEREST: True,
    Platform.TIKTOK: True,
}
# The lifetime each token endpoint announces for a new access token.
LIFETIME = {
    Platform.LINKEDIN: timedelta(days=60),
    Platform.X: timedelta(hours=2),
    Platform.GOOGLE_BUSINESS: timedelta(seconds=3599),
    Platform.PINTEREST: timedelta(days=30),
    Platform.TIKTOK: timedelta(hours=24),
}


def clients(
    http: httpx.AsyncClient, url: str, app: OAuthApp | None = None
) -> dict[Platform, PlatformClient]:
    """Clients pointed at the sandbox, with its OAuth client unless `app` says otherwise."""
    settings = PlatformSandbox.settings_for(url)
    app = app or OAuthApp(PlatformSandbox.CLIENT_ID, PlatformSandbox.CLIENT_SECRET)
    configs = {
        Platform.FACEBOOK: PlatformConfig(base_url=url, app=app),
        Platform.INSTAGRAM: PlatformConfig(
            base_url=settings["instagram_graph_url"], token_url=settings["instagram_token_url"]
        ),
        Platform.LINKEDIN: PlatformConfig(token_url=settings["linkedin_token_url"], app=app),
        Platform.X: PlatformConfig(token_url=settings["x_token_url"], app=app),
        Platform.GOOGLE_BUSINESS: PlatformConfig(token_url=settings["google_token_url"], app=app),
        Platform.PINTEREST: PlatformConfig(token_url=settings["pinterest_token_url"], app=app),
        Platform.TIKTOK: PlatformConfig(token_url=settings["tiktok_token_url"], app=app),
    }
    return build_platform_clients(http, configs)


async def refresh_expecting_error(client: PlatformClient, tokens: Tokens) -> PlatformError:
    with pytest.raises(PlatformError) as caught:
        await client.refresh_token(tokens)
    message = str(caught.value)
    for secret in (tokens.access_token, tokens.refresh_token, PlatformSandbox.CLIENT_SECRET):
        assert secret is None or secret not in message
    return caught.value


@pytest.mark.parametrize("platform", list(REFRESH_GRANT))
async def test_refresh_returns_a_working_access_token_and_the_refresh_token_to_store(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(platform, ACCESS, refresh_token=REFRESH)
    platforms.expire_token(platform, ACCESS)
    before = datetime.now(UTC)

    fresh = await clients(http, platforms_url)[platform].refresh_token(Tokens(ACCESS, REFRESH))

    (grant,) = platforms.grants
    assert fresh.access_token == grant.access_token != ACCESS
    assert platforms.check(platform, fresh.access_token).token == "valid"
    assert fresh.expires_at is not None
    assert before + LIFETIME[platform] <= fresh.expires_at <= datetime.now(UTC) + LIFETIME[platform]
    if REFRESH_GRANT[platform]:
        # Rotated: the old refresh token is spent, the new one is the only one left.
        assert fresh.refresh_token == grant.refresh_token != REFRESH
        assert platforms.valid_refresh_tokens(platform) == {fresh.refresh_token}
    else:
        assert fresh.refresh_token == REFRESH
        assert platforms.valid_refresh_tokens(platform) == {REFRESH}


@pytest.mark.parametrize("platform", [p for p, rotates in REFRESH_GRANT.items() if rotates])
async def test_a_rotated_refresh_token_cannot_be_spent_twice(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(platform, ACCESS, refresh_token=REFRESH)
    client = clients(http, platforms_url)[platform]
    await client.refresh_token(Tokens(ACCESS, REFRESH))

    error = await refresh_expecting_error(client, Tokens(ACCESS, REFRESH))

    assert error.kind is ErrorKind.AUTH


async def test_spending_a_used_x_refresh_token_again_kills_the_whole_token_family(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    # Why refreshes of one connection must never race: the loser takes the winner down too.
    platforms.add_token(Platform.X, ACCESS, refresh_token=REFRESH)
    client = clients(http, platforms_url)[Platform.X]
    winner = await client.refresh_token(Tokens(ACCESS, REFRESH))

    await refresh_expecting_error(client, Tokens(ACCESS, REFRESH))

    assert platforms.valid_refresh_tokens(Platform.X) == set()
    assert platforms.check(Platform.X, winner.access_token).token == "invalid"


@pytest.mark.parametrize("platform", list(REFRESH_GRANT))
async def test_a_revoked_refresh_token_is_an_auth_error(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(platform, ACCESS, refresh_token=REFRESH)
    platforms.revoke_refresh_token(platform, REFRESH)

    error = await refresh_expecting_error(
        clients(http, platforms_url)[platform], Tokens(ACCESS, REFRESH)
    )

    assert error.kind is ErrorKind.AUTH
    assert error.status_code == 400
    assert "refused to refresh" in error.message


@pytest.mark.parametrize("platform", list(REFRESH_GRANT))
async def test_wrong_client_credentials_are_our_configuration_not_the_users_token(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(platform, ACCESS, refresh_token=REFRESH)
    wrong = OAuthApp(PlatformSandbox.CLIENT_ID, "not-the-secret")

    error = await refresh_expecting_error(
        clients(http, platforms_url, wrong)[platform], Tokens(ACCESS, REFRESH)
    )

    # TRANSIENT: the connection is not marked expired for a mistake the user cannot fix.
    assert error.kind is ErrorKind.TRANSIENT
    assert error.status_code == 401
    assert "not-the-secret" not in error.message
    assert platforms.valid_refresh_tokens(platform) == {REFRESH}


@pytest.mark.parametrize("platform", list(REFRESH_GRANT))
async def test_no_configured_client_means_no_request_and_a_retry_later(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    client = clients(http, platforms_url, OAuthApp())[platform]

    error = await refresh_expecting_error(client, Tokens(ACCESS, REFRESH))

    assert error.kind is ErrorKind.TRANSIENT
    assert "not configured" in error.message
    assert platforms.requests == []


@pytest.mark.parametrize("platform", list(REFRESH_GRANT))
async def test_a_connection_without_refresh_token_must_reconnect(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    error = await refresh_expecting_error(clients(http, platforms_url)[platform], Tokens(ACCESS))

    assert error.kind is ErrorKind.AUTH
    assert platforms.requests == []


@pytest.mark.parametrize("platform", list(REFRESH_GRANT))
async def test_token_endpoint_trouble_is_transient(
    platform: Platform, platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(platform, ACCESS, refresh_token=REFRESH)
    platforms.fail_next(platform, Fault.SERVER_ERROR, endpoint="token")

    error = await refresh_expecting_error(
        clients(http, platforms_url)[platform], Tokens(ACCESS, REFRESH)
    )

    assert error.kind is ErrorKind.TRANSIENT
    assert platforms.valid_refresh_tokens(platform) == {REFRESH}


async def test_x_confidential_client_authenticates_with_basic_and_public_client_with_its_id(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    url = PlatformSandbox.settings_for(platforms_url)["x_token_url"]
    platforms.add_token(Platform.X, ACCESS, refresh_token=REFRESH)
    confidential = XClient(
        http, token_url=url, app=OAuthApp("sandbox-client-id", "sandbox-client-secret")
    )
    public = XClient(http, token_url=url, app=OAuthApp("sandbox-client-id"))

    rotated = await confidential.refresh_token(Tokens(ACCESS, REFRESH))
    await public.refresh_token(rotated)

    basic, public_request = platforms.requests
    assert basic.headers["authorization"].startswith("Basic ")
    assert "authorization" not in public_request.headers


async def test_instagram_refreshes_a_still_valid_long_lived_token(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(Platform.INSTAGRAM, ACCESS)

    fresh = await clients(http, platforms_url)[Platform.INSTAGRAM].refresh_token(Tokens(ACCESS))

    assert fresh.access_token == platforms.grants[0].access_token != ACCESS
    assert fresh.refresh_token is None
    assert fresh.expires_at is not None
    assert fresh.expires_at - datetime.now(UTC) > timedelta(days=59)
    (request,) = platforms.requests
    assert request.path == "/instagram/refresh_access_token"
    assert request.query.startswith("grant_type=ig_refresh_token&access_token=")


async def test_instagram_cannot_refresh_an_expired_token(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(Platform.INSTAGRAM, ACCESS)
    platforms.expire_token(Platform.INSTAGRAM, ACCESS)

    error = await refresh_expecting_error(
        clients(http, platforms_url)[Platform.INSTAGRAM], Tokens(ACCESS)
    )

    assert error.kind is ErrorKind.AUTH
    assert "Session has expired" in error.message


async def test_facebook_has_no_refresh_grant_so_an_expired_token_means_reconnecting(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    error = await refresh_expecting_error(
        clients(http, platforms_url)[Platform.FACEBOOK], Tokens(ACCESS, REFRESH)
    )

    assert error.kind is ErrorKind.AUTH
    assert "reconnect Facebook" in error.message
    assert platforms.requests == []


async def test_facebook_exchanges_a_short_lived_token_for_a_long_lived_one(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(Platform.FACEBOOK, ACCESS)
    app = OAuthApp(PlatformSandbox.CLIENT_ID, PlatformSandbox.CLIENT_SECRET)

    long_lived = await FacebookClient(http, platforms_url, app=app).exchange_token(ACCESS)

    assert long_lived.access_token == platforms.grants[0].access_token
    assert long_lived.expires_at is not None
    assert long_lived.expires_at - datetime.now(UTC) > timedelta(days=59)
    (request,) = platforms.requests
    assert request.path == f"/{GRAPH_DEFAULT}/oauth/access_token"
    assert request.query.startswith("grant_type=fb_exchange_token&")


async def test_facebook_exchange_with_a_wrong_app_secret_is_refused_without_leaking_it(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token(Platform.FACEBOOK, ACCESS)
    client = FacebookClient(http, platforms_url, app=OAuthApp(PlatformSandbox.CLIENT_ID, "wrong"))

    with pytest.raises(PlatformError) as caught:
        await client.exchange_token(ACCESS)

    assert caught.value.kind is ErrorKind.AUTH
    assert "Error validating client secret" in caught.value.message
