"""The social platforms' delete and token endpoints on localhost, answering as the real APIs do.

One Starlette app serves them all at its root, so a client needs only its URLs pointed here
(`PlatformSandbox.settings_for` gives every setting at once):
    DELETE /{version}/{object_id}                   Facebook Graph API: a Page post, or with a
                                                    Page token an Instagram media (Facebook Login)
    GET    /{version}/{object_id}                   Graph read-back (?fields=id) of either
    GET    /{version}/me                            Graph: the token's own Page
    GET    /{version}/oauth/access_token            Facebook fb_exchange_token
    DELETE /instagram/{version}/{media_id}          Instagram Login host (refuses, as Meta does)
    GET    /instagram/{version}/{media_id}          Instagram media read-back (?fields=id)
    GET    /instagram/{version}/me                  Instagram: the token's own account
    GET    /instagram/refresh_access_token          Instagram ig_refresh_token
    DELETE /rest/posts/{urn}                        LinkedIn Posts API (URN percent-encoded)
    GET    /rest/posts/{urn}                        LinkedIn read (the clients' version probe)
    POST   /oauth/v2/accessToken                    LinkedIn token endpoint
    DELETE /2/tweets/{id}                           X API v2
    POST   /2/oauth2/token                          X token endpoint
    DELETE /v4/accounts/*/locations/*/localPosts/*  Google Business Profile
    POST   /token                                   Google OAuth token endpoint
    DELETE /v5/pins/{pin_id}                        Pinterest API v5
    POST   /v5/oauth/token                          Pinterest token endpoint
    POST   /v2/oauth/token/                         TikTok token endpoint (TikTok has no delete)
Instagram lives under a prefix because its paths are Graph's paths, like Facebook's.

The posts, tokens and faults, and the request handling every endpoint shares, are
`platform_state.PlatformState`, which `PlatformSandbox` extends with the app; the endpoints are
in `platform_deletes` (deletes and reads) and `platform_tokens`. Both build on `platform_state`
alone, so the imports run one way: this module, then the endpoints, then the state. Bodies,
status codes and headers follow the sources cited in the `mls_sync.social` modules (see
`platform_bodies`). The state's names stay importable from here, where tests take them.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from mls_sync.sandbox.platform_deletes import delete_routes, graph_routes
from mls_sync.sandbox.platform_state import (
    FACEBOOK,
    GOOGLE,
    GRAPH,
    INSTAGRAM,
    INSTAGRAM_PREFIX,
    LINKEDIN,
    PINTEREST,
    PLATFORMS,
    ROTATING,
    TIKTOK,
    TOKEN_SECONDS,
    Admission,
    Clock,
    Fault,
    Grant,
    GraphRefusal,
    Handler,
    PlatformState,
    RecordedRequest,
    TokenState,
    X,
    bearer,
    default_retired_versions,
    graph_access_token,
)
from mls_sync.sandbox.platform_tokens import token_routes

__all__ = [
    "FACEBOOK",
    "GOOGLE",
    "GRAPH",
    "INSTAGRAM",
    "INSTAGRAM_PREFIX",
    "LINKEDIN",
    "PINTEREST",
    "PLATFORMS",
    "ROTATING",
    "TIKTOK",
    "TOKEN_SECONDS",
    "Admission",
    "Clock",
    "Fault",
    "Grant",
    "GraphRefusal",
    "Handler",
    "PlatformSandbox",
    "PlatformState",
    "RecordedRequest",
    "TokenState",
    "X",
    "bearer",
    "default_retired_versions",
    "graph_access_token",
]


class PlatformSandbox(PlatformState):
    """In-memory posts and tokens for every platform (`PlatformState`), served by `app`."""

    def __init__(self) -> None:
        super().__init__()
        self.app = Starlette(routes=self._routes())

    def _routes(self) -> list[Route]:
        return [
            *delete_routes(self),
            *token_routes(self),
            *graph_routes(self),  # last: Facebook's /{version}/{object_id} matches nearly anything
        ]

    @staticmethod
    def settings_for(url: str) -> dict[str, str]:
        """`Settings` keyword arguments that point every platform at a sandbox served at `url`,
        with the OAuth client the sandbox accepts."""
        client = {"id": PlatformSandbox.CLIENT_ID, "secret": PlatformSandbox.CLIENT_SECRET}
        values = {
            "facebook_graph_url": url,
            "instagram_graph_url": f"{url}{INSTAGRAM_PREFIX}",
            "instagram_token_url": f"{url}{INSTAGRAM_PREFIX}/refresh_access_token",
            "linkedin_api_url": url,
            "linkedin_token_url": f"{url}/oauth/v2/accessToken",
            "x_api_url": url,
            "x_token_url": f"{url}/2/oauth2/token",
            "google_business_api_url": url,
            "google_token_url": f"{url}/token",
            "pinterest_api_url": url,
            "pinterest_token_url": f"{url}/v5/oauth/token",
            "tiktok_token_url": f"{url}/v2/oauth/token/",
            "tiktok_client_key": client["id"],
            "tiktok_client_secret": client["secret"],
            "facebook_app_id": client["id"],
            "facebook_app_secret": client["secret"],
        }
        for name in ("linkedin", "x", "google", "pinterest"):
            values[f"{name}_client_id"] = client["id"]
            values[f"{name}_client_secret"] = client["secret"]
        return values
