"""What Facebook and Instagram share: Meta's Graph API error object, its throttling headers and
its token answers.

Documentation relied on (cited in full in `facebook.py`):
- error object ``{"error": {"message", "type", "code", "error_subcode", "is_transient",
  "fbtrace_id"}}``; 102/190 = session or access token invalid (subcode 463 = expired);
  1/2 = temporary; 4/17/32/341/613 and 80000-80014 (Business Use Case) = throttled:
  https://developers.facebook.com/docs/graph-api/guides/error-handling
- ``X-Business-Use-Case-Usage`` / ``X-App-Usage`` / ``X-Page-Usage`` headers carry
  ``estimated_time_to_regain_access`` in minutes:
  https://developers.facebook.com/docs/graph-api/overview/rate-limiting
- permissions: code 10 ("Application does not have permission for this action") and 200-299
  ("Permissions error": a permission not granted, or one unused for 90 days and lapsed); code
  190 subcodes 458 (app not installed), 460 (password changed), 467 (invalid session): the user
  must log in again (error-handling guide, "Authentication error subcodes"). A refresh cannot
  mend any of them, so they are RECONNECT, not AUTH; 463 (expired) ends the same way through
  AUTH (a refresh is tried where the platform has one).
- a retired version: "(#2635) You are calling a deprecated version of the ... API. Please
  update to the latest version: vNN.0." (facebook/facebook-nodejs-business-sdk#239); see
  `social/versions.py` for the published dates.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx

from mls_sync.social._http import (
    Secrets,
    platform_error,
    read_json,
    send,
    server_error,
    unexpected_body,
)
from mls_sync.social._oauth import expires_at
from mls_sync.social.base import ErrorKind, PlatformError, Tokens
from mls_sync.social.versions import retired_message

AUTH_CODES = frozenset({102, 190})  # API session / access token expired, revoked or invalid
# Of 190: the session was invalidated (458 app removed, 460 password changed, 467 invalid), so
# only a new login helps. 463 (expired) stays AUTH like every platform's expired token: the
# outbox tries a refresh where the platform has one, and asks for a login when it fails.
RECONNECT_SUBCODES = frozenset({458, 460, 467})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
VERSION_RETIRED_CODES = frozenset({2635})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613})
BUC_RATE_LIMIT_CODES = range(80000, 80015)  # Business Use Case throttles, 80000-80014
TEMPORARY_CODES = frozenset({1, 2})  # "API Unknown" / "API Service": wait and retry
# code 100 answers for an object Graph cannot load, whatever the reason ("does not exist,
# cannot be loaded due to missing permissions, or does not support this operation").
UNSUPPORTED_REQUEST = "unsupported"
_USAGE_HEADERS = ("x-business-use-case-usage", "x-app-usage", "x-page-usage")


@dataclass(frozen=True)
class GraphError:
    code: int | None
    subcode: int | None
    message: str
    transient: bool

    @property
    def version_retired(self) -> bool:
        return self.code in VERSION_RETIRED_CODES or "deprecated version" in self.message.lower()

    @property
    def cannot_load_object(self) -> bool:
        """Graph's answer for an id it cannot load: gone, not ours, or not deletable."""
        text = self.message.lower()
        return self.code == 100 and ("does not exist" in text or UNSUPPORTED_REQUEST in text)


def graph_error(body: object) -> GraphError | None:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    return GraphError(
        code=_int(error.get("code")),
        subcode=_int(error.get("error_subcode")),
        message=str(error.get("message") or "no message"),
        transient=error.get("is_transient") is True,
    )


def common_error(
    label: str,
    response: httpx.Response,
    error: GraphError,
    secrets: Secrets,
    *,
    platform: str = "facebook",
    api_version: str = "",
) -> PlatformError | None:
    """The VERSION_RETIRED, RECONNECT, AUTH, RATE_LIMITED and TRANSIENT errors both platforms
    read alike; None otherwise."""
    code = error.code
    if error.version_retired:
        return platform_error(
            ErrorKind.VERSION_RETIRED,
            retired_message(platform, api_version, f"{label} refused the call: {error.message}"),
            secrets,
            response,
        ).with_version(api_version)
    if (code == 190 and error.subcode in RECONNECT_SUBCODES) or code in PERMISSION_CODES:
        return platform_error(
            ErrorKind.RECONNECT,
            f"{label} needs the user to log in again: {error.message}",
            secrets,
            response,
        )
    if code in AUTH_CODES or (code is None and response.status_code == 401):
        return platform_error(
            ErrorKind.AUTH,
            f"{label} rejected the access token: {error.message}",
            secrets,
            response,
        )
    if code in RATE_LIMIT_CODES or (code is not None and code in BUC_RATE_LIMIT_CODES):
        return platform_error(
            ErrorKind.RATE_LIMITED,
            f"{label} rate limit reached: {error.message}",
            secrets,
            response,
            retry_after=regain_access_seconds(response.headers),
        )
    if code in TEMPORARY_CODES or error.transient or response.status_code >= 500:
        return platform_error(
            ErrorKind.TRANSIENT, f"{label} is having trouble: {error.message}", secrets, response
        )
    return None


Known = Callable[[httpx.Response, "GraphError", str], PlatformError | None]


async def read_id(http: httpx.AsyncClient, url: str, token: str | None) -> httpx.Response:
    """``GET {url}?fields=id``: the cheapest Graph read, with the token when there is one."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await send(http, "GET", url, headers=headers, params={"fields": "id"})


async def still_there(
    http: httpx.AsyncClient, url: str, token: str, known: Known, label: str
) -> bool:
    """Whether Graph still shows the object to this token, read back after its ambiguous
    "cannot be loaded" answer: only an unreadable object is gone; any other refusal to read
    is not proof of that."""
    response = await read_id(http, url, token)
    body = read_json(response)
    error = graph_error(body)
    if error is not None:
        refusal = known(response, error, token)
        if refusal is not None:
            raise refusal
        return not (error.cannot_load_object or response.status_code == 404)
    if response.status_code >= 500:
        raise server_error(label, response, token)
    if response.status_code == 404:
        return False
    if response.is_success and isinstance(body, dict):
        return True
    raise unexpected_body(label, response, token)


async def probe_version(
    http: httpx.AsyncClient, me_url: str, token: str | None, known: Known, label: str
) -> None:
    """One read of ``/me``: raise VERSION_RETIRED when Graph refuses our version (it answers
    that before it looks at the token), TRANSIENT when it is having trouble."""
    response = await read_id(http, me_url, token)
    error = graph_error(read_json(response))
    refusal = known(response, error, token or "") if error is not None else None
    if refusal is not None and refusal.kind is ErrorKind.VERSION_RETIRED:
        raise refusal
    if response.status_code >= 500:
        raise server_error(label, response, token or ())


def token_answer(
    label: str, response: httpx.Response, previous: Tokens, secrets: Secrets, now: datetime
) -> Tokens:
    """``{"access_token", "token_type", "expires_in"}`` from a Graph token endpoint (Facebook's
    ``fb_exchange_token``, Instagram's ``refresh_access_token``)."""
    body = read_json(response)
    error = graph_error(body)
    if error is not None:
        known = common_error(label, response, error, secrets)
        if known is not None and known.kind is ErrorKind.RATE_LIMITED:
            raise known
        if error.transient or response.status_code >= 500:
            raise platform_error(
                ErrorKind.TRANSIENT,
                f"{label} is having trouble: {error.message}",
                secrets,
                response,
            )
        # Any other refusal of a token request (expired token, bad app secret, which Graph
        # answers with code 1) leaves one way out: the user logging in again.
        raise platform_error(
            ErrorKind.AUTH,
            f"{label} refused to refresh the access token: {error.message}",
            secrets,
            response,
        )
    if response.status_code >= 500:
        raise server_error(label, response, secrets)
    access = body.get("access_token") if isinstance(body, dict) else None
    if not response.is_success or not isinstance(access, str) or not access:
        raise unexpected_body(f"{label} token endpoint", response, secrets)
    assert isinstance(body, dict)
    return Tokens(
        access_token=access,
        refresh_token=previous.refresh_token,
        expires_at=expires_at(body.get("expires_in"), now),
    )


def regain_access_seconds(headers: httpx.Headers) -> float | None:
    """Seconds until Graph lifts the throttle, from the usage headers' estimate in minutes.

    ``X-Business-Use-Case-Usage`` maps each business object id to a list of usages; the other
    usage headers are one flat object. The longest estimate wins: every limit must lift.
    """
    minutes: list[float] = []
    for name in _USAGE_HEADERS:
        raw = headers.get(name)
        if not raw:
            continue
        try:
            usage = json.loads(raw)
        except ValueError:
            continue  # a malformed header must not hide the rate-limit error itself
        minutes.extend(_estimates(usage))
    longest = max(minutes, default=0.0)
    return longest * 60 if longest > 0 else None


def _estimates(usage: object) -> list[float]:
    if isinstance(usage, list):
        return [m for item in usage for m in _estimates(item)]
    if not isinstance(usage, dict):
        return []
    value = usage.get("estimated_time_to_regain_access")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return [m for nested in usage.values() if isinstance(nested, list) for m in _estimates(nested)]


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
