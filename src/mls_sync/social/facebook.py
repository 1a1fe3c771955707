"""Delete a Facebook Page post through the Graph API.

Request: ``DELETE https://graph.facebook.com/{version}/{page-post-id}`` with the Page access token
as ``Authorization: Bearer``; success is ``{"success": true}``.

Documentation relied on:
- Pages API, Posts (create, update, delete a Page post; Page access token, pages_manage_posts):
  https://developers.facebook.com/docs/pages-api/posts
- Graph API error handling (error object ``message/type/code/error_subcode/fbtrace_id``;
  190 = access token expired, subcode 463 = expired, 460 = password changed; 1/2 = temporary;
  4/17/341 = throttling): https://developers.facebook.com/docs/graph-api/guides/error-handling
- Rate limits (Page tokens fall under Business Use Case limits; ``X-Business-Use-Case-Usage``
  carries ``estimated_time_to_regain_access`` in minutes; Page throttling answers code 32):
  https://developers.facebook.com/docs/graph-api/overview/rate-limiting
  and https://developers.facebook.com/blog/post/2016/06/16/page-level-rate-limits/

Observed behaviour (not in the reference pages, seen in public issue threads):
- an expired token is answered with HTTP 400, not 401, e.g. snarfed/bridgy#59
  (``{"error": {"code": 190, "error_subcode": 463, "type": "OAuthException", ...}}``);
- deleting an id Graph cannot load is HTTP 400 ``GraphMethodException`` code 100, subcode 33,
  "Unsupported delete request. Object with ID '...' does not exist, cannot be loaded due to
  missing permissions, or does not support this operation". Graph uses the same answer for a
  post that is gone and for one this token may not touch; like other schedulers we read it as
  gone, because retrying can never succeed and the post no longer shows on the Page for us.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx

from mls_sync.social._http import (
    platform_error,
    read_json,
    send_delete,
    server_error,
    unexpected_body,
)
from mls_sync.social.base import DeleteOutcome, ErrorKind, Platform

LABEL = "Facebook"
_AUTH_CODES = frozenset({102, 190})  # API session / access token expired, revoked or invalid
_RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613})
_BUC_RATE_LIMIT_CODES = range(80000, 80015)  # Business Use Case throttles, 80000-80014
_TEMPORARY_CODES = frozenset({1, 2})  # "API Unknown" / "API Service": wait and retry
_GONE_MARKERS = ("does not exist", "unsupported delete request")
_USAGE_HEADERS = ("x-business-use-case-usage", "x-app-usage", "x-page-usage")


class FacebookClient:
    platform = Platform.FACEBOOK

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = "https://graph.facebook.com",
        api_version: str = "v21.0",
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_version = api_version

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        url = f"{self._base_url}/{self._api_version}/{quote(platform_post_id, safe='')}"
        # The header keeps the token out of URLs, and so out of proxy and access logs.
        headers = {"Authorization": f"Bearer {access_token}"}
        response = await send_delete(self._http, url, headers)
        return _interpret(response, access_token)


def _interpret(response: httpx.Response, token: str) -> DeleteOutcome:
    body = read_json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return _interpret_error(response, error, token)
    if response.status_code >= 500:
        raise server_error(LABEL, response, token)
    if response.status_code == 404:
        return DeleteOutcome.ALREADY_GONE
    if response.is_success and isinstance(body, dict):
        if body.get("success") is True:
            return DeleteOutcome.DELETED
        # {"success": false} is how Graph declines objects it cannot delete (Stories, for one).
        raise platform_error(
            ErrorKind.PERMANENT, "Facebook declined to delete the post", token, response
        )
    if response.status_code == 401:
        raise platform_error(ErrorKind.AUTH, "Facebook rejected the access token", token, response)
    raise unexpected_body(LABEL, response, token)


def _interpret_error(
    response: httpx.Response, error: dict[str, object], token: str
) -> DeleteOutcome:
    code = _int(error.get("code"))
    message = str(error.get("message") or "no message")
    if code in _AUTH_CODES or (code is None and response.status_code == 401):
        raise platform_error(
            ErrorKind.AUTH, f"Facebook rejected the access token: {message}", token, response
        )
    if code == 100 and any(marker in message.lower() for marker in _GONE_MARKERS):
        return DeleteOutcome.ALREADY_GONE
    if code in _RATE_LIMIT_CODES or (code is not None and code in _BUC_RATE_LIMIT_CODES):
        raise platform_error(
            ErrorKind.RATE_LIMITED,
            f"Facebook rate limit reached: {message}",
            token,
            response,
            retry_after=regain_access_seconds(response.headers),
        )
    if response.status_code == 404:
        return DeleteOutcome.ALREADY_GONE
    if code in _TEMPORARY_CODES or error.get("is_transient") is True or response.status_code >= 500:
        raise platform_error(
            ErrorKind.TRANSIENT, f"Facebook is having trouble: {message}", token, response
        )
    raise platform_error(
        ErrorKind.PERMANENT, f"Facebook refused to delete the post: {message}", token, response
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
