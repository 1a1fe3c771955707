"""Facebook, LinkedIn and X delete endpoints on localhost, answering as the real APIs do.

One Starlette app serves all three at its root, so a client needs only its base URL pointed here:
    DELETE /{version}/{post_id}   Facebook Graph API
    DELETE /rest/posts/{urn}      LinkedIn Posts API (URN percent-encoded, as Rest.li requires)
    DELETE /2/tweets/{id}         X API v2

Bodies, status codes and headers follow the sources cited in `mls_sync.social.facebook`,
`.linkedin` and `.x`. Where no public example was found, the body is modelled on the platform's
documented error shape and marked "modelled" below; clients never branch on those details.

State is shared with the test or demo thread that drives the sandbox while uvicorn serves it
from its own thread, so every read-modify-write happens under one lock.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mls_sync.social.base import Platform

FACEBOOK, LINKEDIN, X = Platform.FACEBOOK.value, Platform.LINKEDIN.value, Platform.X.value
PLATFORMS = (FACEBOOK, LINKEDIN, X)


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


class TokenState(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"  # missing, unknown or malformed


@dataclass(frozen=True)
class _Admission:
    token: TokenState
    throttled: bool


class PlatformSandbox:
    """In-memory posts and tokens for three platforms, served by `app`."""

    slow_seconds = 1.0
    regain_access_minutes = 5  # Facebook's estimate while throttled
    x_window_seconds = 900  # X resets its 15-minute window

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._posts: dict[str, set[str]] = defaultdict(set)
        self._deleted: dict[str, set[str]] = defaultdict(set)
        self._tokens: dict[str, set[str]] = defaultdict(set)
        self._expired: dict[str, set[str]] = defaultdict(set)
        self._faults: dict[str, list[Fault]] = defaultdict(list)
        self.throttle: dict[str, int] = {}
        self.deletes: list[tuple[str, str]] = []
        self.requests: list[RecordedRequest] = []
        self.app = Starlette(
            routes=[
                Route("/2/tweets/{tweet_id}", self._x_delete, methods=["DELETE"]),
                Route("/rest/posts/{urn:path}", self._linkedin_delete, methods=["DELETE"]),
                Route("/{version}/{post_id}", self._facebook_delete, methods=["DELETE"]),
            ]
        )

    # -- state the test or demo controls ---------------------------------------------------
    def add_post(self, platform: str, post_id: str) -> None:
        with self._lock:
            self._posts[_known(platform)].add(post_id)
            self._deleted[platform].discard(post_id)

    def has_post(self, platform: str, post_id: str) -> bool:
        with self._lock:
            return post_id in self._posts[_known(platform)]

    def add_token(self, platform: str, token: str) -> None:
        with self._lock:
            self._tokens[_known(platform)].add(token)
            self._expired[platform].discard(token)

    def expire_token(self, platform: str, token: str) -> None:
        with self._lock:
            self._tokens[_known(platform)].discard(token)
            self._expired[platform].add(token)

    def fail_next(self, platform: str, *faults: Fault) -> None:
        """Answer the platform's next delete requests with these faults, in order."""
        with self._lock:
            self._faults[_known(platform)].extend(faults)

    # -- shared request handling -----------------------------------------------------------
    async def _admit(self, platform: str, request: Request) -> Response | None:
        """Record the request, then apply a queued fault: a Response ends the request."""
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    platform=platform,
                    method=request.method,
                    path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                )
            )
            queue = self._faults[platform]
            fault = queue.pop(0) if queue else None
        if fault is Fault.SLOW:
            await asyncio.sleep(self.slow_seconds)
        elif fault is Fault.BAD_GATEWAY_HTML:
            return _html(502, "<html><body><center><h1>502 Bad Gateway</h1></center></body></html>")
        elif fault is Fault.NOT_JSON:
            return _html(200, "<html><body>Please sign in to continue.</body></html>")
        elif fault is Fault.SERVER_ERROR:
            return _SERVER_ERRORS[platform]()
        return None

    def _check(self, platform: str, token: str | None) -> _Admission:
        with self._lock:
            if token and token in self._tokens[platform]:
                state = TokenState.VALID
            elif token and token in self._expired[platform]:
                state = TokenState.EXPIRED
            else:
                state = TokenState.INVALID
            throttled = state is TokenState.VALID and self.throttle.get(platform, 0) > 0
            if throttled:
                self.throttle[platform] -= 1
            return _Admission(state, throttled)

    def _take(self, platform: str, post_id: str) -> bool | None:
        """Delete a post: True if it existed, False if deleted earlier, None if never known."""
        with self._lock:
            if post_id in self._posts[platform]:
                self._posts[platform].remove(post_id)
                self._deleted[platform].add(post_id)
                self.deletes.append((platform, post_id))
                return True
            return False if post_id in self._deleted[platform] else None

    # -- Facebook Graph API ----------------------------------------------------------------
    async def _facebook_delete(self, request: Request) -> Response:
        post_id = request.path_params["post_id"]
        # Graph takes the token from the Authorization header or the access_token parameter.
        token = _bearer(request) or request.query_params.get("access_token")
        if (early := await self._admit(FACEBOOK, request)) is not None:
            return early
        admission = self._check(FACEBOOK, token)
        if admission.token is TokenState.EXPIRED:
            now = datetime.now(UTC)
            return _graph_error(
                400,
                "OAuthException",
                190,
                f"Error validating access token: Session has expired on "
                f"{_graph_time(now - timedelta(hours=1))}. The current time is {_graph_time(now)}.",
                subcode=463,
            )
        if admission.token is TokenState.INVALID:
            return _graph_error(
                400, "OAuthException", 190, "Invalid OAuth access token - Cannot parse access token"
            )
        if admission.throttled:
            page_id = post_id.split("_", 1)[0]
            usage = {
                page_id: [
                    {
                        "type": "pages",
                        "call_count": 100,
                        "total_cputime": 14,
                        "total_time": 18,
                        "estimated_time_to_regain_access": self.regain_access_minutes,
                    }
                ]
            }
            response = _graph_error(
                400, "OAuthException", 32, "(#32) Page request limit reached", transient=True
            )
            response.headers["x-business-use-case-usage"] = json.dumps(usage)
            return response
        if self._take(FACEBOOK, post_id):
            return JSONResponse({"success": True})
        return _graph_error(
            400,
            "GraphMethodException",
            100,
            f"Unsupported delete request. Object with ID '{post_id}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation. Please read "
            "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
            subcode=33,
        )

    # -- LinkedIn Posts API ----------------------------------------------------------------
    async def _linkedin_delete(self, request: Request) -> Response:
        urn = request.path_params["urn"]
        token = _bearer(request)
        if (early := await self._admit(LINKEDIN, request)) is not None:
            return early
        if not request.headers.get("linkedin-version"):
            # modelled: versioned /rest endpoints refuse requests without LinkedIn-Version
            return _linkedin_error(
                400,
                "A version must be present. Please specify a version by adding the "
                "LinkedIn-Version header.",
                code="VERSION_MISSING",
            )
        admission = self._check(LINKEDIN, token)
        if admission.token is TokenState.EXPIRED:
            # modelled on the documented 401 shape; the exact service code is not published
            return _linkedin_error(
                401,
                "The token used in the request has expired",
                code="EXPIRED_ACCESS_TOKEN",
                service_code=65602,
            )
        if admission.token is TokenState.INVALID:
            return _linkedin_error(
                401, "Invalid access token", code="INVALID_ACCESS_TOKEN", service_code=65600
            )
        if admission.throttled:
            return _linkedin_error(
                429,
                "Resource level throttle APPLICATION DAY limit for calls to this resource is "
                "reached.",
            )
        taken = self._take(LINKEDIN, urn)
        if taken is None:
            return _linkedin_error(404, "Not Found", code="NOT_FOUND")  # modelled
        # Deletes are idempotent: a post deleted earlier answers 204 again, like a fresh one.
        return Response(status_code=204)

    # -- X API v2 --------------------------------------------------------------------------
    async def _x_delete(self, request: Request) -> Response:
        tweet_id = request.path_params["tweet_id"]
        token = _bearer(request)
        if (early := await self._admit(X, request)) is not None:
            return early
        admission = self._check(X, token)
        if admission.token is not TokenState.VALID:
            # X answers an expired and an unknown token alike.
            return _problem(401, "Unauthorized", "Unauthorized")
        reset = str(int(time.time()) + self.x_window_seconds)
        if admission.throttled:
            response = _problem(429, "Too Many Requests", "Too Many Requests")
            response.headers.update(_x_limits(remaining=0, reset=reset))
            return response
        if self._take(X, tweet_id):
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
        response.headers.update(_x_limits(remaining=49, reset=reset))
        return response


def _known(platform: str) -> str:
    if platform not in PLATFORMS:
        raise ValueError(f"the sandbox serves {', '.join(PLATFORMS)}, not {platform!r}")
    return platform


def _bearer(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def _html(status: int, body: str) -> Response:
    return Response(body, status_code=status, media_type="text/html")


def _graph_time(moment: datetime) -> str:
    return moment.strftime("%A, %d-%b-%y %H:%M:%S UTC")


def _graph_error(
    status: int,
    kind: str,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    transient: bool = False,
) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    error["fbtrace_id"] = secrets.token_urlsafe(8)
    return JSONResponse({"error": error}, status_code=status)


def _linkedin_error(
    status: int, message: str, *, code: str | None = None, service_code: int | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"status": status}
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    if code is not None:
        body["code"] = code
    body["message"] = message
    return JSONResponse(body, status_code=status)


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    body = {"title": title, "detail": detail, "type": "about:blank", "status": status}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _x_limits(*, remaining: int, reset: str) -> dict[str, str]:
    # Per-user limit of DELETE /2/tweets/:id: 50 requests per 15 minutes.
    return {
        "x-rate-limit-limit": "50",
        "x-rate-limit-remaining": str(remaining),
        "x-rate-limit-reset": reset,
    }


_SERVER_ERRORS = {
    # Graph's "API Unknown" error, which its docs call a temporary issue.
    FACEBOOK: lambda: _graph_error(
        500, "OAuthException", 1, "An unknown error has occurred.", transient=True
    ),
    LINKEDIN: lambda: _linkedin_error(500, "Internal Server Error"),  # modelled
    X: lambda: _problem(503, "Service Unavailable", "Service Unavailable"),  # modelled
}
