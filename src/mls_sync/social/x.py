"""Delete a post (Tweet) on X through API v2.

Request: ``DELETE https://api.x.com/2/tweets/{id}`` with the user's OAuth 2.0 access token
(Authorization Code with PKCE, scopes ``tweet.read tweet.write users.read``) as Bearer; success
is ``{"data": {"deleted": true}}``.

Tokens: access tokens live two hours; with the ``offline.access`` scope X also issues a refresh
token, exchanged at ``POST https://api.x.com/2/oauth2/token`` (form: ``grant_type=refresh_token``,
``refresh_token``; a confidential client authenticates with HTTP Basic ``client_id:secret``, a
public one sends ``client_id`` in the form). Refresh tokens are single-use: every answer carries
a new one, which must be stored before anything else happens, and two refreshes of the same
token race each other (the loser's token is dead). The outbox serialises refreshes per
connection for that reason.

Documentation relied on:
- Delete Post: https://docs.x.com/x-api/posts/delete-post
  (formerly https://developer.x.com/en/docs/x-api/tweets/manage-tweets/api-reference/delete-tweets-id;
  50 requests per 15 minutes per user)
- OAuth 2.0 Authorization Code Flow with PKCE (refresh request, confidential clients, two-hour
  tokens, ``offline.access``):
  https://docs.x.com/resources/fundamentals/authentication/oauth-2-0/authorization-code
  and https://docs.x.com/resources/fundamentals/authentication/oauth-2-0/user-access-token
- Rate limits (``x-rate-limit-limit``, ``x-rate-limit-remaining``, ``x-rate-limit-reset`` as a
  Unix timestamp; 429 when exceeded): https://docs.x.com/fundamentals/rate-limits
- Error bodies are RFC 7807 problems (``title``, ``detail``, ``type``, ``status``), top level or
  under ``errors``; a missing Tweet has type
  ``https://api.twitter.com/2/problems/resource-not-found``.

Observed (issue threads): an invalid or expired token answers 401 with
``{"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}``
(plhery/node-twitter-api-v2#425). Developers have also reported 404 instead of 401 for a bad
token on DELETE (linked from myConsciousness/twitter-api-v2#348); a 404 is still read as "gone",
as the product specifies, since the two cannot be told apart from the answer. The token
endpoint answers a missing or wrong Basic header with 401 ``{"error": "unauthorized_client",
"error_description": "Missing valid authorization header"}`` (plhery/node-twitter-api-v2#319,
tweepy/tweepy#2156) and a refused code with 400 ``{"error": "invalid_request",
"error_description": "Value passed for the authorization code was invalid."}``
(plhery/node-twitter-api-v2#496); the sandbox answers a refused refresh token the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from mls_sync.social._http import (
    parse_retry_after,
    platform_error,
    read_json,
    send_delete,
    server_error,
    unexpected_body,
)
from mls_sync.social._oauth import ClientAuth, OAuthApp, TokenEndpoint
from mls_sync.social.base import DeleteOutcome, ErrorKind, Platform, Tokens

LABEL = "X"
TOKEN_URL = "https://api.x.com/2/oauth2/token"
_NOT_FOUND_TYPE_SUFFIX = "/resource-not-found"


class XClient:
    platform = Platform.X
    supports_delete = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = "https://api.x.com",
        *,
        token_url: str = TOKEN_URL,
        app: OAuthApp | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._clock = clock
        self._token_endpoint = TokenEndpoint(
            LABEL, token_url, app or OAuthApp(), ClientAuth.BASIC_OR_PUBLIC
        )

    async def refresh_token(self, tokens: Tokens) -> Tokens:
        now = datetime.fromtimestamp(self._clock(), UTC)
        return await self._token_endpoint.refresh(self._http, tokens, clock=lambda: now)

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        url = f"{self._base_url}/2/tweets/{quote(platform_post_id, safe='')}"
        headers = {"Authorization": f"Bearer {access_token}"}
        response = await send_delete(self._http, url, headers)
        return self._interpret(response, access_token)

    def _interpret(self, response: httpx.Response, token: str) -> DeleteOutcome:
        status = response.status_code
        if status >= 500:
            raise server_error(LABEL, response, token)
        body = read_json(response)
        problems = _problems(body)
        detail = _detail(problems)
        if status == 429:
            raise platform_error(
                ErrorKind.RATE_LIMITED,
                f"X rate limit reached: {detail or 'too many requests'}",
                token,
                response,
                retry_after=self._retry_after(response),
            )
        if status == 401:
            raise platform_error(
                ErrorKind.AUTH,
                f"X rejected the access token: {detail or 'unauthorized'}",
                token,
                response,
            )
        if status == 404 or any(_is_not_found(p) for p in problems):
            return DeleteOutcome.ALREADY_GONE
        if body is None:
            raise unexpected_body(LABEL, response, token)
        if response.is_success:
            data = body.get("data") if isinstance(body, dict) else None
            if isinstance(data, dict) and data.get("deleted") is True:
                return DeleteOutcome.DELETED
            raise platform_error(
                ErrorKind.PERMANENT,
                f"X did not delete the post: {detail or 'deleted was not true'}",
                token,
                response,
            )
        raise platform_error(
            ErrorKind.PERMANENT,
            f"X refused to delete the post (HTTP {status}): {detail or 'no detail'}",
            token,
            response,
        )

    def _retry_after(self, response: httpx.Response) -> float | None:
        reset = response.headers.get("x-rate-limit-reset")
        if reset is not None:
            try:
                return max(float(reset) - self._clock(), 0.0)
            except ValueError:
                pass  # fall back to Retry-After below
        return parse_retry_after(response.headers.get("retry-after"))


def _problems(body: object) -> list[dict[str, object]]:
    """RFC 7807 problems, whether the body is one problem or carries an ``errors`` list."""
    if not isinstance(body, dict):
        return []
    errors = body.get("errors")
    if isinstance(errors, list):
        return [e for e in errors if isinstance(e, dict)]
    if "type" in body or "title" in body:
        return [body]
    return []


def _detail(problems: list[dict[str, object]]) -> str | None:
    for problem in problems:
        for key in ("detail", "message", "title"):
            value = problem.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _is_not_found(problem: dict[str, object]) -> bool:
    kind = problem.get("type")
    return isinstance(kind, str) and kind.endswith(_NOT_FOUND_TYPE_SUFFIX)
