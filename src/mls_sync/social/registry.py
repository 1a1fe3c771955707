"""One client per supported platform, sharing the application's HTTP client.

Adding a platform (Instagram, Google Business Profile, Pinterest, TikTok are planned) means one
module implementing `PlatformClient` and one entry in `_FACTORIES`; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from mls_sync.social.base import Platform, PlatformClient
from mls_sync.social.facebook import FacebookClient
from mls_sync.social.linkedin import LinkedInClient
from mls_sync.social.x import XClient

# Each factory takes the shared HTTP client and, when overridden, a base URL.
_Factory = Callable[[httpx.AsyncClient, str | None], PlatformClient]


def _facebook(http: httpx.AsyncClient, base_url: str | None) -> PlatformClient:
    return FacebookClient(http) if base_url is None else FacebookClient(http, base_url)


def _linkedin(http: httpx.AsyncClient, base_url: str | None) -> PlatformClient:
    return LinkedInClient(http) if base_url is None else LinkedInClient(http, base_url)


def _x(http: httpx.AsyncClient, base_url: str | None) -> PlatformClient:
    return XClient(http) if base_url is None else XClient(http, base_url)


_FACTORIES: Mapping[Platform, _Factory] = {
    Platform.FACEBOOK: _facebook,
    Platform.LINKEDIN: _linkedin,
    Platform.X: _x,
}

SUPPORTED_PLATFORMS: frozenset[Platform] = frozenset(_FACTORIES)


def build_platform_clients(
    http: httpx.AsyncClient, base_urls: Mapping[Platform, str] | None = None
) -> dict[Platform, PlatformClient]:
    """Clients for every supported platform; `base_urls` points some of them elsewhere.

    Overrides for platforms without a client yet are ignored, so one configuration can name
    every platform the sandbox serves before each client exists.
    """
    overrides = base_urls or {}
    return {
        platform: factory(http, overrides.get(platform)) for platform, factory in _FACTORIES.items()
    }
