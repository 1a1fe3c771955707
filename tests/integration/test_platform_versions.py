"""API versions as data: current defaults, checked settings, and the platforms' own answer to a
retired version, read by the clients as VERSION_RETIRED (over real HTTP against the sandbox)."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from pydantic import ValidationError

from mls_sync.config import Settings
from mls_sync.sandbox.platforms import INSTAGRAM_PREFIX, PlatformSandbox
from mls_sync.social.base import ErrorKind, Platform, PlatformError
from mls_sync.social.facebook import FacebookClient
from mls_sync.social.instagram import InstagramClient, InstagramFacebookLoginClient
from mls_sync.social.linkedin import LinkedInClient
from mls_sync.social.versions import POLICIES, VersionPolicy, sunset_of

# The day these defaults were chosen; they must outlive it by half a year at least.
CHOSEN_ON = date(2026, 12, 1)


def test_the_settings_defaults_are_the_version_policies_defaults() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.linkedin_api_version == POLICIES[Platform.LINKEDIN].default
    assert defaults.facebook_api_version == POLICIES[Platform.FACEBOOK].default
    assert defaults.instagram_api_version == POLICIES[Platform.INSTAGRAM].default


@pytest.mark.parametrize("policy", POLICIES.values(), ids=lambda p: p.platform.value)
def test_no_default_is_near_a_published_sunset(policy: VersionPolicy) -> None:
    sunset = sunset_of(policy.platform, policy.default)
    assert sunset is None or sunset > CHOSEN_ON + timedelta(days=180)


def test_the_old_defaults_are_known_to_be_retired_or_close_to_it() -> None:
    assert sunset_of("linkedin", "202411") == date(2025, 11, 17)
    assert sunset_of("facebook", "v21.0") == date(2027, 1, 21)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("linkedin_api_version", "2024-11"),
        ("linkedin_api_version", "v202609"),
        ("facebook_api_version", "25.0"),
        ("instagram_api_version", "v25"),
    ],
)
def test_a_malformed_version_setting_is_refused_with_its_name(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, **{name: value})  # type: ignore[call-arg]
    assert name in str(refused.value)


# -- the platforms' answers ----------------------------------------------------------------------


async def test_linkedin_answers_a_retired_version_with_426_and_the_client_names_the_setting(
    platforms: PlatformSandbox, platforms_url: str, http: httpx.AsyncClient
) -> None:
    platforms.add_token("linkedin", "li-token")
    platforms.add_post("linkedin", "urn:li:share:1")
    client = LinkedInClient(http, platforms_url, "202411")

    with pytest.raises(PlatformError) as refused:
        await client.delete_post("urn:li:share:1", "li-token")

    error = refused.value
    assert (error.kind, error.status_code, error.api_version) == (
        ErrorKind.VERSION_RETIRED,
        426,
        "202411",
    )
    assert "MLS_SYNC_LINKEDIN_API_VERSION" in error.message
    assert "li-token" not in error.message
    assert platforms.has_post("linkedin", "urn:li:share:1")


async def test_linkedins_version_probe_passes_today_and_fails_for_a_retired_version(
    platforms_url: str, http: httpx.AsyncClient
) -> None:
    await LinkedInClient(http, platforms_url).probe_api_version()  # a 401 says nothing bad

    with pytest.raises(PlatformError) as refused:
        await LinkedInClient(http, platforms_url, "202411").probe_api_version()
    assert refused.value.kind is ErrorKind.VERSION_RETIRED


@pytest.mark.parametrize(
    ("make", "setting"),
    [
        (lambda http, url, v: FacebookClient(http, url, v), "MLS_SYNC_FACEBOOK_API_VERSION"),
        (
            lambda http, url, v: InstagramFacebookLoginClient(http, url, v),
            "MLS_SYNC_FACEBOOK_API_VERSION",
        ),
        (
            lambda http, url, v: InstagramClient(http, f"{url}{INSTAGRAM_PREFIX}", v),
            "MLS_SYNC_INSTAGRAM_API_VERSION",
        ),
    ],
    ids=["facebook", "instagram-facebook-login", "instagram-login"],
)
async def test_graph_answers_a_retired_version_with_code_2635_read_as_version_retired(
    platforms_url: str, http: httpx.AsyncClient, make: object, setting: str
) -> None:
    assert callable(make)
    await make(http, platforms_url, "v25.0").probe_api_version()

    with pytest.raises(PlatformError) as refused:
        await make(http, platforms_url, "v20.0").probe_api_version()

    assert refused.value.kind is ErrorKind.VERSION_RETIRED
    assert setting in refused.value.message and "v20.0" in refused.value.message
