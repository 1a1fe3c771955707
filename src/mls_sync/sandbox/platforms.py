"""The social platforms' delete and token endpoints on localhost, answering as the real APIs do.

One Starlette app serves them all at its root, so a client needs only its URLs pointed here
(`PlatformSandbox.settings_for` gives every setting at once):
    DELETE /{version}/{post_id}                     Facebook Graph API
    GET    /{version}/oauth/access_token            Facebook fb_exchange_token
    DELETE /instagram/{version}/{media_id}          Instagram Graph API (GET reads it back)
    GET    /instagram/refresh_access_token          Instagram ig_refresh_token
    DELETE /rest/posts/{urn}                        LinkedIn Posts API (URN percent-encoded)
    POST   /oauth/v2/accessToken                    LinkedIn token endpoint
    DELETE /2/tweets/{id}                           X API v2
    POST   /2/oauth2/token                          X token endpoint
    DELETE /v4/accounts/*/locations/*/localPosts/*  Google Business Profile
    POST   /token                                   Google OAuth token endpoint
    DELETE /v5/pins/{pin_id}                        Pinterest API v5
    POST   /v5/oauth/token                          Pinterest token endpoint
    POST   /v2/oauth/token/                         TikTok token endpoint (TikTok has no delete)
Instagram lives under a prefix because its paths are Graph's paths, like Facebook's.

Bodies, status codes and headers follow the sources cited in the `mls_sync.social` modules (see
`platform_bodies`). The sandbox holds which posts exist and which tokens are valid, expired,
used or revoked; refresh tokens rotate where the platform rotates them (X, Pinterest, TikTok),
and presenting a used X refresh token again revokes its whole family, as X does. Tests and the
demo can expire tokens, revoke refresh tokens, throttle a platform, queue faults, or set
`chaos` for seeded random 5xx answers, timeouts and 429 bursts (sandbox/chaos.py).

State is shared with the test or demo thread that drives the sandbox while uvicorn serves it
from its own thread, so every read-modify-write happens under one lock.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mls_sync.sandbox import platform_bodies as bodies
from mls_sync.sandbox.chaos import Chaos, ChaosFault
from mls_sync.social.base import Platform

FACEBOOK, LINKEDIN, X = Platform.FACEBOOK.value, Platform.LINKEDIN.value, Platform.X.value
INSTAGRAM, GOOGLE = Platform.INSTAGRAM.value, Platform.GOOGLE_BUSINESS.value
PINTEREST, TIKTOK = Platform.PINTEREST.value, Platform.TIKTOK.value
PLATFORMS = tuple(p.value for p in Platform)
ROTATING = frozenset({X, PINTEREST, TIKTOK})  # a refresh spends the refresh token
INSTAGRAM_PREFIX = "/instagram"

Handler = Callable[[Request], Awaitable[Response]]


class Fault(StrEnum):
    """Ways the next request to a platform can go wrong besides the API's own errors."""

    SERVER_ERROR = "server_error"  # the platform's own 5xx answer
    BAD_GATEWAY_HTML = "bad_gateway_html"  # an edge proxy's HTML 502 page
    NOT_JSON = "not_json"  # HTTP 200 carrying an HTML page (a captive portal, a misroute)
    SLOW = "slow"  # the normal answer, but only after `slow_seconds`


@dataclass(frozen=True)
class RecordedRequest:
    platform: str
    method: str
    path: str  # as sent, percent-encoding preserved
    headers: Mapping[str, str]  # lower-case names
    query: str = ""  # the raw query string


@dataclass(frozen=True)
class Grant:
    """Tokens the sandbox issued on a refresh (or exchange)."""

    platform: str
    access_token: str
    refresh_token: str | None
    presented: str  # the refresh token (or access token) that was redeemed


class TokenState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"  # missing, unknown or malformed


@dataclass(frozen=True)
class Admission:
    token: TokenState
    throttled: bool


@dataclass
class _RefreshToken:
    family: int
    used: bool = False
    revoked: bool = False


class PlatformSandbox:
    """In-memory posts and tokens for every platform, served by `app`."""

    CLIENT_ID = "sandbox-client-id"
    CLIENT_SECRET = "sandbox-client-secret"

    slow_seconds = 1.0
    latency_seconds = 0.0  # added to every delete and token request, to observe concurrency
    regain_access_minutes = 5  # Graph's estimate while throttled
    x_window_seconds = 900  # X resets its 15-minute window
    # Meta documents no delete for IG media; flip to model a Graph that allows it.
    instagram_allows_delete = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posts: dict[str, set[str]] = defaultdict(set)
        self._deleted: dict[str, set[str]] = defaultdict(set)
        self._tokens: dict[str, set[str]] = defaultdict(set)
        self._expired: dict[str, set[str]] = defaultdict(set)
        self._refresh: dict[str, dict[str, _RefreshToken]] = defaultdict(dict)
        self._families: dict[int, set[str]] = defaultdict(set)  # family -> access tokens
        self._faults: dict[tuple[str, str], list[Fault]] = defaultdict(list)
        self._in_flight: Counter[str] = Counter()
        self.throttle: dict[str, int] = {}
        self.deletes: list[tuple[str, str]] = []
        self.requests: list[RecordedRequest] = []
        self.refreshes: list[tuple[str, str]] = []  # (platform, token presented), every attempt
        self.grants: list[Grant] = []
        self.peak_in_flight: Counter[str] = Counter()  # per platform, and "*" for all
        # Seeded random 5xx, timeouts and 429 bursts on deletes and token calls (sandbox/chaos.py),
        # and the requests they hit, as (platform, path as sent, fault).
        self.chaos: Chaos | None = None
        self.chaos_hits: list[tuple[str, str, ChaosFault]] = []
        self.app = Starlette(routes=self._routes())

    def _routes(self) -> list[Route]:
        # Imported here: those modules build on this one's state and helpers.
        from mls_sync.sandbox.platform_deletes import delete_routes
        from mls_sync.sandbox.platform_tokens import token_routes

        return [
            Route("/2/tweets/{tweet_id}", self.tracked(X, self._x_delete), methods=["DELETE"]),
            Route(
                "/rest/posts/{urn:path}",
                self.tracked(LINKEDIN, self._linkedin_delete),
                methods=["DELETE"],
            ),
            *token_routes(self),
            *delete_routes(self),
            Route(
                "/{version}/{post_id}",
                self.tracked(FACEBOOK, self._facebook_delete),
                methods=["DELETE"],
            ),
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

    # -- state the test or demo controls ---------------------------------------------------
    def add_post(self, platform: str, post_id: str) -> None:
        with self._lock:
            self._posts[_known(platform)].add(post_id)
            self._deleted[platform].discard(post_id)

    def has_post(self, platform: str, post_id: str) -> bool:
        with self._lock:
            return post_id in self._posts[_known(platform)]

    def add_token(self, platform: str, token: str, *, refresh_token: str | None = None) -> None:
        """A valid access token, and with `refresh_token` the refresh token issued with it."""
        with self._lock:
            self._tokens[_known(platform)].add(token)
            self._expired[platform].discard(token)
            if refresh_token is not None:
                family = len(self._families) + 1
                self._families[family].add(token)
                self._refresh[platform][refresh_token] = _RefreshToken(family)

    def expire_token(self, platform: str, token: str) -> None:
        with self._lock:
            self._tokens[_known(platform)].discard(token)
            self._expired[platform].add(token)

    def revoke_refresh_token(self, platform: str, refresh_token: str) -> None:
        """The user revoked the app, or the refresh token ran out: refreshing it now fails."""
        with self._lock:
            state = self._refresh[_known(platform)].get(refresh_token)
            if state is not None:
                state.revoked = True

    def valid_refresh_tokens(self, platform: str) -> set[str]:
        with self._lock:
            return {
                token
                for token, state in self._refresh[_known(platform)].items()
                if not state.used and not state.revoked
            }

    def fail_next(self, platform: str, *faults: Fault, endpoint: str = "delete") -> None:
        """Answer the platform's next requests to `endpoint` ("delete" or "token") with these
        faults, in order."""
        with self._lock:
            self._faults[(_known(platform), endpoint)].extend(faults)

    # -- shared request handling (also used by platform_deletes and platform_tokens) -------
    def tracked(self, platform: str, handler: Handler) -> Handler:
        """Count the requests in flight per platform, to check concurrency caps."""

        async def endpoint(request: Request) -> Response:
            with self._lock:
                self._in_flight[platform] += 1
                self._in_flight["*"] += 1
                for key in (platform, "*"):
                    self.peak_in_flight[key] = max(self.peak_in_flight[key], self._in_flight[key])
            try:
                return await handler(request)
            finally:
                with self._lock:
                    self._in_flight[platform] -= 1
                    self._in_flight["*"] -= 1

        return endpoint

    async def admit(
        self, platform: str, request: Request, endpoint: str = "delete"
    ) -> Response | None:
        """Record the request, then apply a queued fault: a Response ends the request."""
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    platform=platform,
                    method=request.method,
                    path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    query=request.url.query,
                )
            )
            queue = self._faults[(platform, endpoint)]
            fault = queue.pop(0) if queue else None
        if endpoint in ("delete", "token") and self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        if fault is None and self.chaos is not None:
            return await self._chaos_answer(platform, request)
        if fault is Fault.SLOW:
            await asyncio.sleep(self.slow_seconds)
        elif fault is Fault.BAD_GATEWAY_HTML:
            return bodies.html(
                502, "<html><body><center><h1>502 Bad Gateway</h1></center></body></html>"
            )
        elif fault is Fault.NOT_JSON:
            return bodies.html(200, "<html><body>Please sign in to continue.</body></html>")
        elif fault is Fault.SERVER_ERROR:
            return _SERVER_ERRORS[platform]()
        return None

    async def _chaos_answer(self, platform: str, request: Request) -> Response | None:
        assert self.chaos is not None
        chaotic = self.chaos.draw(platform)
        if chaotic is None:
            return None
        with self._lock:
            path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
            self.chaos_hits.append((platform, path, chaotic))
        if chaotic is ChaosFault.SERVER_ERROR:
            return _SERVER_ERRORS[platform]()
        if chaotic is ChaosFault.TIMEOUT:
            await asyncio.sleep(self.chaos.timeout_seconds)  # then the normal answer
            return None
        return _RATE_LIMITED[platform](self.chaos.retry_after_seconds)

    def check(self, platform: str, token: str | None) -> Admission:
        """The token's state, and whether this request is throttled (which uses one up)."""
        with self._lock:
            state = self._token_state(platform, token)
            throttled = state is TokenState.VALID and self.throttle.get(platform, 0) > 0
            if throttled:
                self.throttle[platform] -= 1
            return Admission(state, throttled)

    def _token_state(self, platform: str, token: str | None) -> TokenState:
        if token and token in self._tokens[platform]:
            return TokenState.VALID
        if token and token in self._expired[platform]:
            return TokenState.EXPIRED
        return TokenState.INVALID

    def exists(self, platform: str, post_id: str) -> bool:
        with self._lock:
            return post_id in self._posts[platform]

    def take(self, platform: str, post_id: str) -> bool | None:
        """Delete a post: True if it existed, False if deleted earlier, None if never known."""
        with self._lock:
            if post_id in self._posts[platform]:
                self._posts[platform].remove(post_id)
                self._deleted[platform].add(post_id)
                self.deletes.append((platform, post_id))
                return True
            return False if post_id in self._deleted[platform] else None

    def redeem(self, platform: str, refresh_token: str) -> Grant | None:
        """Spend a refresh token: new tokens, or None when it is unknown, used or revoked."""
        with self._lock:
            self.refreshes.append((platform, refresh_token))
            state = self._refresh[platform].get(refresh_token)
            if state is None or state.revoked:
                return None
            if state.used:
                if platform == X:  # reuse of a rotated token kills every token of its family
                    self._revoke_family(platform, state.family)
                return None
            access = _mint(platform, "at")
            self._tokens[platform].add(access)
            self._families[state.family].add(access)
            issued = refresh_token
            if platform in ROTATING:
                state.used = True
                issued = _mint(platform, "rt")
                self._refresh[platform][issued] = _RefreshToken(state.family)
            grant = Grant(platform, access, issued, presented=refresh_token)
            self.grants.append(grant)
            return grant

    def renew(self, platform: str, access_token: str | None) -> Grant | TokenState:
        """A new access token for a valid one (Instagram refresh, Facebook exchange)."""
        with self._lock:
            self.refreshes.append((platform, access_token or ""))
            state = self._token_state(platform, access_token)
            if state is not TokenState.VALID or access_token is None:
                return state
            access = _mint(platform, "at")
            self._tokens[platform].add(access)
            grant = Grant(platform, access, None, presented=access_token)
            self.grants.append(grant)
            return grant

    def _revoke_family(self, platform: str, family: int) -> None:
        for state in self._refresh[platform].values():
            if state.family == family:
                state.revoked = True
        for access in self._families[family]:
            self._tokens[platform].discard(access)

    # -- Facebook Graph API ----------------------------------------------------------------
    async def _facebook_delete(self, request: Request) -> Response:
        post_id = request.path_params["post_id"]
        # Graph takes the token from the Authorization header or the access_token parameter.
        token = bearer(request) or request.query_params.get("access_token")
        if (early := await self.admit(FACEBOOK, request)) is not None:
            return early
        admission = self.check(FACEBOOK, token)
        if admission.token is TokenState.EXPIRED:
            return bodies.graph_expired_token()
        if admission.token is TokenState.INVALID:
            return bodies.graph_invalid_token()
        if admission.throttled:
            return bodies.graph_throttled(
                32,
                "(#32) Page request limit reached",
                post_id.split("_", 1)[0],
                "pages",
                self.regain_access_minutes,
            )
        if self.take(FACEBOOK, post_id):
            return JSONResponse({"success": True})
        return bodies.graph_cannot_load("delete", post_id)

    # -- LinkedIn Posts API ----------------------------------------------------------------
    async def _linkedin_delete(self, request: Request) -> Response:
        urn = request.path_params["urn"]
        token = bearer(request)
        if (early := await self.admit(LINKEDIN, request)) is not None:
            return early
        if not request.headers.get("linkedin-version"):
            # modelled: versioned /rest endpoints refuse requests without LinkedIn-Version
            return bodies.linkedin_error(
                400,
                "A version must be present. Please specify a version by adding the "
                "LinkedIn-Version header.",
                code="VERSION_MISSING",
            )
        admission = self.check(LINKEDIN, token)
        if admission.token is TokenState.EXPIRED:
            # modelled on the documented 401 shape; the exact service code is not published
            return bodies.linkedin_error(
                401,
                "The token used in the request has expired",
                code="EXPIRED_ACCESS_TOKEN",
                service_code=65602,
            )
        if admission.token is TokenState.INVALID:
            return bodies.linkedin_error(
                401, "Invalid access token", code="INVALID_ACCESS_TOKEN", service_code=65600
            )
        if admission.throttled:
            return bodies.linkedin_error(
                429,
                "Resource level throttle APPLICATION DAY limit for calls to this resource is "
                "reached.",
            )
        taken = self.take(LINKEDIN, urn)
        if taken is None:
            return bodies.linkedin_error(404, "Not Found", code="NOT_FOUND")  # modelled
        # Deletes are idempotent: a post deleted earlier answers 204 again, like a fresh one.
        return Response(status_code=204)

    # -- X API v2 --------------------------------------------------------------------------
    async def _x_delete(self, request: Request) -> Response:
        tweet_id = request.path_params["tweet_id"]
        token = bearer(request)
        if (early := await self.admit(X, request)) is not None:
            return early
        admission = self.check(X, token)
        if admission.token is not TokenState.VALID:
            # X answers an expired and an unknown token alike.
            return bodies.problem(401, "Unauthorized", "Unauthorized")
        reset = str(int(time.time()) + self.x_window_seconds)
        if admission.throttled:
            response = bodies.problem(429, "Too Many Requests", "Too Many Requests")
            response.headers.update(bodies.x_limits(remaining=0, reset=reset))
            return response
        if self.take(X, tweet_id):
            response = JSONResponse({"data": {"deleted": True}})
        else:
            not_found = {
                "value": tweet_id,
                "detail": f"Could not find tweet with id: [{tweet_id}].",
                "title": "Not Found Error",
                "resource_type": "tweet",
                "parameter": "id",
                "resource_id": tweet_id,
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            }
            response = JSONResponse({"errors": [not_found]}, status_code=404)
        response.headers.update(bodies.x_limits(remaining=49, reset=reset))
        return response


def _known(platform: str) -> str:
    if platform not in PLATFORMS:
        raise ValueError(f"the sandbox serves {', '.join(PLATFORMS)}, not {platform!r}")
    return platform


def _mint(platform: str, kind: str) -> str:
    return f"{platform}-{kind}-{secrets.token_urlsafe(12)}"


def bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


_SERVER_ERRORS: dict[str, Callable[[], Response]] = {
    # Graph's "API Unknown" error, which its docs call a temporary issue.
    FACEBOOK: lambda: bodies.graph_error(
        500, "OAuthException", 1, "An unknown error has occurred.", transient=True
    ),
    INSTAGRAM: lambda: bodies.graph_error(
        500, "OAuthException", 2, "An unexpected error has occurred.", transient=True
    ),
    LINKEDIN: lambda: bodies.linkedin_error(500, "Internal Server Error"),  # modelled
    X: lambda: bodies.problem(503, "Service Unavailable", "Service Unavailable"),  # modelled
    GOOGLE: lambda: bodies.google_error(
        503, "UNAVAILABLE", "The service is currently unavailable."
    ),
    PINTEREST: lambda: bodies.pinterest_error(500, 0, "Internal error."),  # modelled
    TIKTOK: lambda: bodies.oauth_error(500, "internal_error", "Internal error."),  # modelled
}


def _short_throttle(response: Response, retry_after: int) -> Response:
    response.headers["Retry-After"] = str(retry_after)
    return response


# A short burst of throttling, as each platform words it, lifting after `retry_after` seconds.
_RATE_LIMITED: dict[str, Callable[[int], Response]] = {
    # Graph: code 4 (application request limit); no usage estimate, so the client backs off.
    FACEBOOK: lambda s: bodies.graph_error(
        400, "OAuthException", 4, "(#4) Application request limit reached"
    ),
    INSTAGRAM: lambda s: bodies.graph_error(
        400, "OAuthException", 4, "(#4) Application request limit reached"
    ),
    LINKEDIN: lambda s: _short_throttle(bodies.linkedin_error(429, "Too many requests"), s),
    X: lambda s: _short_throttle(bodies.problem(429, "Too Many Requests", "Too Many Requests"), s),
    GOOGLE: lambda s: bodies.google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Requests'.",
        details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{s}s"}],
    ),
    PINTEREST: lambda s: _short_throttle(
        bodies.pinterest_error(429, 8, "You have exceeded your rate limit. Try again later."), s
    ),
    TIKTOK: lambda s: _short_throttle(
        bodies.oauth_error(429, "rate_limit_exceeded", "Too many requests."), s
    ),
}
