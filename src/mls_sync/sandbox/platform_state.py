"""The platform sandbox's state, constants and shared request handling, which its endpoints
(`platform_deletes`, `platform_tokens`) and its app (`platforms.PlatformSandbox`) build on.

The sandbox holds which posts exist and which tokens are valid, expired, used or revoked;
refresh tokens rotate where the platform rotates them (X, Pinterest, TikTok), and presenting a
used X refresh token again revokes its whole family, as X does. Tests and the demo can expire
tokens, revoke refresh tokens, throttle a platform, queue faults, or set `chaos` for seeded
random 5xx answers, timeouts and 429 bursts (sandbox/chaos.py).

As the platforms behave in 2026-12: API versions retire (`retired_versions`, `retire_version`):
LinkedIn answers a retired ``LinkedIn-Version`` with HTTP 426 and Graph a retired ``/vNN.0/`` with
code 2635, both before looking at the token. Graph tokens can lose a permission
(`lapse_permission`: codes 10, 200) or their session (`invalidate_session`: 190 with subcode 458,
460, 463 or 467), and a Page can be denied one delete while the post stays readable
(`deny_delete`: code 100). Tokens expire on schedule by the injectable `clock`: at the
`expires_at` given to `add_token`, and tokens the token endpoints mint after the `expires_in`
they answer.

State is shared with the test or demo thread that drives the sandbox while uvicorn serves it
from its own thread, so every read-modify-write happens under one lock.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from starlette.requests import Request
from starlette.responses import Response

from mls_sync.sandbox import platform_bodies as bodies
from mls_sync.sandbox.chaos import Chaos, ChaosFault
from mls_sync.social.base import Platform

FACEBOOK, LINKEDIN, X = Platform.FACEBOOK.value, Platform.LINKEDIN.value, Platform.X.value
INSTAGRAM, GOOGLE = Platform.INSTAGRAM.value, Platform.GOOGLE_BUSINESS.value
PINTEREST, TIKTOK = Platform.PINTEREST.value, Platform.TIKTOK.value
PLATFORMS = tuple(p.value for p in Platform)
ROTATING = frozenset({X, PINTEREST, TIKTOK})  # a refresh spends the refresh token
GRAPH = frozenset({FACEBOOK, INSTAGRAM})  # Meta's Graph API: versioned paths, Graph errors
INSTAGRAM_PREFIX = "/instagram"
# Seconds a token minted by each token endpoint lives: the `expires_in` those endpoints answer.
TOKEN_SECONDS: dict[str, int] = {
    FACEBOOK: bodies.GRAPH_TOKEN_SECONDS,
    INSTAGRAM: bodies.GRAPH_TOKEN_SECONDS,
    LINKEDIN: 5184000,  # 60 days
    X: 7200,
    GOOGLE: 3599,
    PINTEREST: 2592000,
    TIKTOK: 86400,
}

Handler = Callable[[Request], Awaitable[Response]]
Clock = Callable[[], datetime]


def default_retired_versions() -> dict[str, set[str]]:
    """The versions the platforms no longer serve in 2026-12.

    LinkedIn: monthly ``YYYYMM`` versions, each served about a year; 202411 sunset 2025-11-17
    and 202511 on 2026-11-16, while 202512 and later still answer
    (https://learn.microsoft.com/en-us/linkedin/marketing/versioning). Graph: every version
    through v20.0, which expired 2026-09-24; v21.0 is served until 2027-01-21
    (https://developers.facebook.com/docs/graph-api/changelog/versions).
    """
    months = (f"{year}{month:02d}" for year in range(2022, 2026) for month in range(1, 13))
    linkedin = {month for month in months if "202206" <= month <= "202511"}
    graph = {f"v2.{minor}" for minor in range(13)} | {f"v3.{minor}" for minor in range(4)}
    graph |= {f"v{major}.0" for major in range(4, 21)}
    return {LINKEDIN: linkedin, FACEBOOK: set(graph), INSTAGRAM: set(graph)}


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
class GraphRefusal:
    """What Graph answers every call made with one token: a permission error (code 10 or 200)
    or an invalidated session (code 190 with `subcode` 458, 460, 463 or 467)."""

    code: int
    subcode: int | None = None

    def answer(self, now: datetime) -> Response:
        if self.code == 190 and self.subcode is not None:
            return bodies.graph_session_error(self.subcode, PlatformState.CLIENT_ID, now)
        return bodies.graph_permission_error(self.code)


@dataclass(frozen=True)
class Admission:
    token: TokenState
    throttled: bool
    refusal: GraphRefusal | None = None  # Graph only: set for a VALID token that is refused


@dataclass
class _RefreshToken:
    family: int
    used: bool = False
    revoked: bool = False


class PlatformState:
    """In-memory posts and tokens for every platform, and the request handling every endpoint
    shares (`PlatformSandbox` serves them)."""

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
        self._expires_at: dict[str, dict[str, datetime]] = defaultdict(dict)
        self._refusals: dict[str, dict[str, GraphRefusal]] = defaultdict(dict)
        self._denied: dict[str, set[str]] = defaultdict(set)  # posts whose delete is refused
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
        # platform -> API versions it refuses (LinkedIn 426, Graph code 2635); change freely.
        self.retired_versions: dict[str, set[str]] = default_retired_versions()
        # What "now" is for token expiry; tests inject their own to expire tokens on schedule.
        self.clock: Clock = lambda: datetime.now(UTC)

    # -- state the test or demo controls ---------------------------------------------------
    def add_post(self, platform: str, post_id: str) -> None:
        with self._lock:
            self._posts[_known(platform)].add(post_id)
            self._deleted[platform].discard(post_id)

    def has_post(self, platform: str, post_id: str) -> bool:
        with self._lock:
            return post_id in self._posts[_known(platform)]

    def add_token(
        self,
        platform: str,
        token: str,
        *,
        refresh_token: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        """A valid access token, and with `refresh_token` the refresh token issued with it.
        With `expires_at` the token turns EXPIRED once `clock` reaches that moment."""
        with self._lock:
            self._tokens[_known(platform)].add(token)
            self._expired[platform].discard(token)
            self._set_expiry(platform, token, expires_at)
            if refresh_token is not None:
                family = len(self._families) + 1
                self._families[family].add(token)
                self._refresh[platform][refresh_token] = _RefreshToken(family)

    def expire_token(self, platform: str, token: str) -> None:
        with self._lock:
            self._tokens[_known(platform)].discard(token)
            self._expired[platform].add(token)

    def retire_version(self, platform: str, version: str) -> None:
        """The platform stops serving `version` from now on."""
        with self._lock:
            self.retired_versions.setdefault(_known(platform), set()).add(version)

    def version_retired(self, platform: str, version: str) -> bool:
        # LinkedIn's patch versions ("202411.01") retire with their month.
        base = version.partition(".")[0] if platform == LINKEDIN else version
        with self._lock:
            return base in self.retired_versions.get(platform, set())

    def deny_delete(self, platform: str, post_id: str) -> None:
        """Graph refuses to delete this post (code 100) yet still reads it: a Page token
        without pages_manage_posts, or media this login may not delete (modelled)."""
        with self._lock:
            self._denied[_graph(platform)].add(post_id)

    def delete_denied(self, platform: str, post_id: str) -> bool:
        with self._lock:
            return post_id in self._denied[platform]

    def lapse_permission(self, platform: str, token: str, code: int) -> None:
        """Every Graph call with `token` answers permission error `code` (10 or 200) from now."""
        if code not in bodies.GRAPH_PERMISSION_ERRORS:
            raise ValueError(f"permission errors are {sorted(bodies.GRAPH_PERMISSION_ERRORS)}")
        with self._lock:
            self._refusals[_graph(platform)][token] = GraphRefusal(code)

    def invalidate_session(self, platform: str, token: str, subcode: int) -> None:
        """Every Graph call with `token` answers code 190 with `subcode`: 458 (app removed), 460
        (password changed), 463 (expired) or 467 (invalid access token)."""
        if subcode not in {*bodies.GRAPH_SESSION_MESSAGES, 463}:
            raise ValueError("session subcodes are 458, 460, 463 and 467")
        with self._lock:
            self._refusals[_graph(platform)][token] = GraphRefusal(190, subcode)

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
        """Answer the platform's next requests to `endpoint` ("delete", "token", or "read" for
        reads and ``/me``) with these faults, in order."""
        with self._lock:
            self._faults[(_known(platform), endpoint)].extend(faults)

    # -- shared request handling (platform_deletes and platform_tokens) -------------------
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
            return bodies.SERVER_ERRORS[platform]()
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
            return bodies.SERVER_ERRORS[platform]()
        if chaotic is ChaosFault.TIMEOUT:
            await asyncio.sleep(self.chaos.timeout_seconds)  # then the normal answer
            return None
        return bodies.RATE_LIMITED[platform](self.chaos.retry_after_seconds)

    def check(self, platform: str, token: str | None) -> Admission:
        """The token's state, whether Graph refuses it, and whether this request is throttled
        (which uses one up)."""
        with self._lock:
            state = self._token_state(platform, token)
            refusal = self._refusals[platform].get(token or "")
            refusal = refusal if state is TokenState.VALID else None
            throttled = (
                state is TokenState.VALID and refusal is None and self.throttle.get(platform, 0) > 0
            )
            if throttled:
                self.throttle[platform] -= 1
            return Admission(state, throttled, refusal)

    def _token_state(self, platform: str, token: str | None) -> TokenState:
        if token and token in self._tokens[platform]:
            expires_at = self._expires_at[platform].get(token)
            if expires_at is not None and self.clock() >= expires_at:
                return TokenState.EXPIRED
            return TokenState.VALID
        if token and token in self._expired[platform]:
            return TokenState.EXPIRED
        return TokenState.INVALID

    def _set_expiry(self, platform: str, token: str, expires_at: datetime | None) -> None:
        if expires_at is None:
            self._expires_at[platform].pop(token, None)
        else:
            self._expires_at[platform][token] = expires_at

    def _mint_access(self, platform: str) -> str:
        """A new valid access token, expiring after the `expires_in` its endpoint answers."""
        access = _mint(platform, "at")
        self._tokens[platform].add(access)
        lifetime = timedelta(seconds=TOKEN_SECONDS[platform])
        self._set_expiry(platform, access, self.clock() + lifetime)
        return access

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
            access = self._mint_access(platform)
            self._families[state.family].add(access)
            issued = refresh_token
            if platform in ROTATING:
                state.used = True
                issued = _mint(platform, "rt")
                self._refresh[platform][issued] = _RefreshToken(state.family)
            grant = Grant(platform, access, issued, presented=refresh_token)
            self.grants.append(grant)
            return grant

    def renew(self, platform: str, access_token: str | None) -> Grant | TokenState | GraphRefusal:
        """A new access token for a valid one (Instagram refresh, Facebook exchange); a token
        whose session Graph invalidated gets that refusal instead."""
        with self._lock:
            self.refreshes.append((platform, access_token or ""))
            state = self._token_state(platform, access_token)
            if state is not TokenState.VALID or access_token is None:
                return state
            refusal = self._refusals[platform].get(access_token)
            if refusal is not None and refusal.code == 190:
                return refusal
            access = self._mint_access(platform)
            grant = Grant(platform, access, None, presented=access_token)
            self.grants.append(grant)
            return grant

    def _revoke_family(self, platform: str, family: int) -> None:
        for state in self._refresh[platform].values():
            if state.family == family:
                state.revoked = True
        for access in self._families[family]:
            self._tokens[platform].discard(access)


def _known(platform: str) -> str:
    if platform not in PLATFORMS:
        raise ValueError(f"the sandbox serves {', '.join(PLATFORMS)}, not {platform!r}")
    return platform


def _graph(platform: str) -> str:
    if _known(platform) not in GRAPH:
        raise ValueError(f"only Graph platforms ({', '.join(sorted(GRAPH))}) answer this")
    return platform


def _mint(platform: str, kind: str) -> str:
    return f"{platform}-{kind}-{secrets.token_urlsafe(12)}"


def bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def graph_access_token(request: Request) -> str | None:
    """Graph takes the token from the Authorization header or the access_token parameter."""
    return bearer(request) or request.query_params.get("access_token") or None
