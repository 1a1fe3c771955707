"""The sandbox's token endpoints: each platform's refresh (or exchange) as it really answers.

Every endpoint checks the app's client credentials the way its platform takes them (form fields,
HTTP Basic, or for a public X client the bare client id), spends refresh tokens through
`PlatformState.redeem` (which rotates them for X, Pinterest and TikTok) and answers with the
platform's own success and error bodies, cited in the `mls_sync.social` modules. Bodies marked
"modelled" follow the documented shape where no public example was found.

Each answer's ``expires_in`` is `TOKEN_SECONDS` of its platform, and the token it carries
expires after exactly that long by the sandbox's `clock`. Facebook's versioned exchange refuses a
retired version (code 2635) before it looks at the app or the token; Graph tokens whose session
was invalidated (`invalidate_session`) cannot be renewed and get that 190 answer.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mls_sync.sandbox import platform_bodies as bodies
from mls_sync.sandbox.platform_state import (
    FACEBOOK,
    GOOGLE,
    INSTAGRAM,
    INSTAGRAM_PREFIX,
    LINKEDIN,
    PINTEREST,
    TIKTOK,
    TOKEN_SECONDS,
    Grant,
    GraphRefusal,
    PlatformState,
    TokenState,
    X,
)


def token_routes(sandbox: PlatformState) -> list[Route]:
    endpoints = _Endpoints(sandbox)
    return [
        Route("/2/oauth2/token", endpoints.x, methods=["POST"]),
        Route("/oauth/v2/accessToken", endpoints.linkedin, methods=["POST"]),
        Route("/token", endpoints.google, methods=["POST"]),
        Route("/v5/oauth/token", endpoints.pinterest, methods=["POST"]),
        Route("/v2/oauth/token/", endpoints.tiktok, methods=["POST"]),
        Route(f"{INSTAGRAM_PREFIX}/refresh_access_token", endpoints.instagram, methods=["GET"]),
        Route("/{version}/oauth/access_token", endpoints.facebook, methods=["GET"]),
    ]


class _Endpoints:
    def __init__(self, sandbox: PlatformState) -> None:
        self.sandbox = sandbox
        self.client = (sandbox.CLIENT_ID, sandbox.CLIENT_SECRET)

    async def x(self, request: Request) -> Response:
        if (early := await self.sandbox.admit(X, request, "token")) is not None:
            return early
        form = await _form(request)
        basic = _basic(request)
        # Confidential clients must use Basic; a public client sends only its id.
        ok = basic == self.client if basic is not None else form.get("client_id") == self.client[0]
        if not ok:
            return bodies.oauth_error(
                401, "unauthorized_client", "Missing valid authorization header"
            )
        grant = self._redeem(X, form)
        if grant is None:
            return bodies.oauth_error(
                400, "invalid_request", "Value passed for the token was invalid."
            )
        return JSONResponse(
            {
                "token_type": "bearer",
                "expires_in": TOKEN_SECONDS[X],
                "access_token": grant.access_token,
                "scope": "tweet.write users.read tweet.read offline.access",
                "refresh_token": grant.refresh_token,
            }
        )

    async def linkedin(self, request: Request) -> Response:
        if (early := await self.sandbox.admit(LINKEDIN, request, "token")) is not None:
            return early
        form = await _form(request)
        if (form.get("client_id"), form.get("client_secret")) != self.client:
            return bodies.oauth_error(401, "invalid_client", "Client authentication failed")
        grant = self._redeem(LINKEDIN, form)
        if grant is None:  # modelled wording
            return bodies.oauth_error(
                400,
                "invalid_grant",
                "The provided authorization grant or refresh token is invalid, expired or revoked",
            )
        return JSONResponse(
            {
                "access_token": grant.access_token,
                "expires_in": TOKEN_SECONDS[LINKEDIN],
                "refresh_token": grant.refresh_token,  # the same one: LinkedIn does not rotate
                "refresh_token_expires_in": 31449600,
                "scope": "w_member_social,openid,profile",
            }
        )

    async def google(self, request: Request) -> Response:
        if (early := await self.sandbox.admit(GOOGLE, request, "token")) is not None:
            return early
        form = await _form(request)
        if (form.get("client_id"), form.get("client_secret")) != self.client:
            return bodies.oauth_error(401, "invalid_client", "Unauthorized")
        grant = self._redeem(GOOGLE, form)
        if grant is None:
            return bodies.oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        return JSONResponse(
            {
                "access_token": grant.access_token,
                "expires_in": TOKEN_SECONDS[GOOGLE],
                "scope": "https://www.googleapis.com/auth/business.manage",
                "token_type": "Bearer",
            }
        )

    async def pinterest(self, request: Request) -> Response:
        if (early := await self.sandbox.admit(PINTEREST, request, "token")) is not None:
            return early
        form = await _form(request)
        if _basic(request) != self.client:
            return bodies.pinterest_error(401, 2, "Authentication failed.")
        grant = self._redeem(PINTEREST, form)
        if grant is None:
            return bodies.pinterest_error(400, 1, "Invalid refresh token.")  # modelled
        return JSONResponse(
            {
                "access_token": grant.access_token,
                "refresh_token": grant.refresh_token,
                "response_type": "refresh_token",
                "token_type": "bearer",
                "expires_in": TOKEN_SECONDS[PINTEREST],
                "refresh_token_expires_in": 31536000,
                "scope": "boards:read,pins:read,pins:write",
            }
        )

    async def tiktok(self, request: Request) -> Response:
        if (early := await self.sandbox.admit(TIKTOK, request, "token")) is not None:
            return early
        form = await _form(request)
        if (form.get("client_key"), form.get("client_secret")) != self.client:
            return bodies.oauth_error(  # modelled
                401, "invalid_client", "Client key or secret is incorrect.", log_id=_log_id()
            )
        grant = self._redeem(TIKTOK, form)
        if grant is None:
            return bodies.oauth_error(  # modelled
                400, "invalid_grant", "Refresh token is invalid or expired.", log_id=_log_id()
            )
        return JSONResponse(
            {
                "access_token": grant.access_token,
                "expires_in": TOKEN_SECONDS[TIKTOK],
                "open_id": "sandbox-open-id",
                "refresh_expires_in": 31536000,
                "refresh_token": grant.refresh_token,
                "scope": "user.info.basic,video.publish",
                "token_type": "Bearer",
            }
        )

    async def instagram(self, request: Request) -> Response:
        if (early := await self.sandbox.admit(INSTAGRAM, request, "token")) is not None:
            return early
        if request.query_params.get("grant_type") != "ig_refresh_token":
            return bodies.graph_error(
                400, "OAuthException", 100, "Invalid parameter: grant_type"
            )  # modelled
        token = request.query_params.get("access_token")
        return self._graph_renewal(self.sandbox.renew(INSTAGRAM, token))

    async def facebook(self, request: Request) -> Response:
        if (early := await self.sandbox.admit(FACEBOOK, request, "token")) is not None:
            return early
        if self.sandbox.version_retired(FACEBOOK, request.path_params["version"]):
            return bodies.graph_retired_version()
        query = request.query_params
        if (query.get("client_id"), query.get("client_secret")) != self.client:
            return bodies.graph_error(400, "OAuthException", 1, "Error validating client secret.")
        if query.get("grant_type") != "fb_exchange_token":
            return bodies.graph_error(
                400, "OAuthException", 100, "Invalid parameter: grant_type"
            )  # modelled
        return self._graph_renewal(self.sandbox.renew(FACEBOOK, query.get("fb_exchange_token")))

    def _graph_renewal(self, result: Grant | TokenState | GraphRefusal) -> Response:
        if isinstance(result, Grant):
            return bodies.graph_token(result.access_token)
        if isinstance(result, GraphRefusal):
            return result.answer(self.sandbox.clock())
        if result is TokenState.EXPIRED:
            return bodies.graph_expired_token(self.sandbox.clock())
        return bodies.graph_invalid_token()

    def _redeem(self, platform: str, form: dict[str, str]) -> Grant | None:
        if form.get("grant_type") != "refresh_token":
            return None
        return self.sandbox.redeem(platform, form.get("refresh_token", ""))


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: Starlette's form parser needs python-multipart, which we do not ship.
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"))
    return {key: values[-1] for key, values in parsed.items()}


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def _log_id() -> str:
    return secrets.token_hex(16).upper()
