"""One client per supported platform, sharing the application's HTTP client.

Adding a platform means one module implementing `PlatformClient` and one entry in `_FACTORIES`;
nothing else changes. Each client gets only what it needs from its `PlatformConfig`; anything
left unset keeps the platform's real default (its production URL and API version).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from mls_sync.config import Settings
from mls_sync.social._oauth import OAuthApp
from mls_sync.social.base import Login, Platform, PlatformClient
from mls_sync.social.facebook import FacebookClient
from mls_sync.social.google_business import GoogleBusinessClient
from mls_sync.social.instagram import InstagramClient, InstagramFacebookLoginClient
from mls_sync.social.linkedin import LinkedInClient
from mls_sync.social.pinterest import PinterestClient
from mls_sync.social.tiktok import TikTokClient
from mls_sync.social.x import XClient

__all__ = [
    "INSTAGRAM_VIA_FACEBOOK",
    "SUPPORTED_PLATFORMS",
    "OAuthApp",
    "PlatformConfig",
    "build_platform_clients",
    "client_for",
]

# The key of the Instagram client that deletes through Facebook Login (graph.facebook.com with a
# Page token); the plain "instagram" key is Instagram Login's.
INSTAGRAM_VIA_FACEBOOK = "instagram+facebook_login"


@dataclass(frozen=True)
class PlatformConfig:
    """Where one platform lives and how this application authenticates to it."""

    base_url: str | None = None
    api_version: str | None = None
    token_url: str | None = None
    app: OAuthApp = field(default_factory=OAuthApp)

    def kwargs(self, *names: str) -> dict[str, Any]:
        """The named settings that are set, as constructor keyword arguments."""
        values = {
            "base_url": self.base_url,
            "api_version": self.api_version,
            "token_url": self.token_url,
            "app": self.app,
        }
        return {name: values[name] for name in names if values[name] is not None}


_Factory = Callable[[httpx.AsyncClient, PlatformConfig], PlatformClient]

_FACTORIES: Mapping[Platform, _Factory] = {
    Platform.FACEBOOK: lambda http, c: FacebookClient(
        http, **c.kwargs("base_url", "api_version", "app")
    ),
    Platform.INSTAGRAM: lambda http, c: InstagramClient(
        http, **c.kwargs("base_url", "api_version", "token_url")
    ),
    Platform.LINKEDIN: lambda http, c: LinkedInClient(
        http, **c.kwargs("base_url", "api_version", "token_url", "app")
    ),
    Platform.X: lambda http, c: XClient(http, **c.kwargs("base_url", "token_url", "app")),
    Platform.GOOGLE_BUSINESS: lambda http, c: GoogleBusinessClient(
        http, **c.kwargs("base_url", "token_url", "app")
    ),
    Platform.PINTEREST: lambda http, c: PinterestClient(
        http, **c.kwargs("base_url", "token_url", "app")
    ),
    Platform.TIKTOK: lambda http, c: TikTokClient(http, **c.kwargs("token_url", "app")),
}

SUPPORTED_PLATFORMS: frozenset[Platform] = frozenset(_FACTORIES)


def build_platform_clients(
    http: httpx.AsyncClient, configs: Mapping[Platform, PlatformConfig | str] | None = None
) -> dict[str, PlatformClient]:
    """Clients for every supported platform (keyed by platform), and Instagram's Facebook Login
    client under `INSTAGRAM_VIA_FACEBOOK`; `configs` points some of them elsewhere.

    A plain string is taken as the platform's base URL, which is all most tests need.
    """
    overrides = configs or {}

    def config(platform: Platform) -> PlatformConfig:
        value = overrides.get(platform)
        if isinstance(value, str):
            return PlatformConfig(base_url=value)
        return value or PlatformConfig()

    clients: dict[str, PlatformClient] = {
        platform: factory(http, config(platform)) for platform, factory in _FACTORIES.items()
    }
    # Facebook Login means Facebook's host and API version, with the Page token.
    clients[INSTAGRAM_VIA_FACEBOOK] = InstagramFacebookLoginClient(
        http, **config(Platform.FACEBOOK).kwargs("base_url", "api_version", "app")
    )
    return clients


def client_for(
    clients: Mapping[str, PlatformClient], platform: str, login: str | None
) -> PlatformClient | None:
    """The client a connection of `platform` made through `login` deletes with."""
    if platform == Platform.INSTAGRAM and login == Login.FACEBOOK:
        return clients.get(INSTAGRAM_VIA_FACEBOOK)
    return clients.get(platform)


def platform_configs(settings: Settings) -> dict[Platform, PlatformConfig]:
    """Each platform's URLs, API version and this application's OAuth client, from settings."""
    s = settings
    return {
        Platform.FACEBOOK: PlatformConfig(
            base_url=s.facebook_graph_url,
            api_version=s.facebook_api_version,
            app=_app(s.facebook_app_id, s.facebook_app_secret),
        ),
        Platform.INSTAGRAM: PlatformConfig(
            base_url=s.instagram_graph_url,
            api_version=s.instagram_api_version,
            token_url=s.instagram_token_url,
        ),
        Platform.LINKEDIN: PlatformConfig(
            base_url=s.linkedin_api_url,
            api_version=s.linkedin_api_version,
            token_url=s.linkedin_token_url,
            app=_app(s.linkedin_client_id, s.linkedin_client_secret),
        ),
        Platform.X: PlatformConfig(
            base_url=s.x_api_url,
            token_url=s.x_token_url,
            app=_app(s.x_client_id, s.x_client_secret),
        ),
        Platform.GOOGLE_BUSINESS: PlatformConfig(
            base_url=s.google_business_api_url,
            token_url=s.google_token_url,
            app=_app(s.google_client_id, s.google_client_secret),
        ),
        Platform.PINTEREST: PlatformConfig(
            base_url=s.pinterest_api_url,
            token_url=s.pinterest_token_url,
            app=_app(s.pinterest_client_id, s.pinterest_client_secret),
        ),
        Platform.TIKTOK: PlatformConfig(
            token_url=s.tiktok_token_url,
            app=_app(s.tiktok_client_key, s.tiktok_client_secret),
        ),
    }


def _app(client_id: str | None, secret: SecretStr | None) -> OAuthApp:
    return OAuthApp(client_id, secret.get_secret_value() if secret is not None else None)
