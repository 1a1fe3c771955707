"""Delete a LinkedIn post through the versioned Posts API.

Request: ``DELETE https://api.linkedin.com/rest/posts/{URL-encoded share or ugcPost URN}`` with
``Authorization: Bearer``, ``LinkedIn-Version: YYYYMM`` and ``X-Restli-Protocol-Version: 2.0.0``;
success is ``204 No Content``.

Tokens: access tokens live 60 days. Apps approved for programmatic refresh tokens get a refresh
token (365 days, not extended by use) and refresh with ``POST
https://www.linkedin.com/oauth/v2/accessToken`` (form: ``grant_type=refresh_token``,
``refresh_token``, ``client_id``, ``client_secret``). LinkedIn does not rotate refresh tokens:
the answer carries the same one, and its ``refresh_token_expires_in`` keeps counting down.

Documentation relied on:
- Posts API (required headers, delete by encoded URN, 204; deletes are idempotent, so deleting
  a post that is already deleted may also answer 204):
  https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/posts-api
- Error handling (body ``{"status", "serviceErrorCode", "message"}``, 401 for a token that is
  expired, revoked or invalid):
  https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/error-handling
- Programmatic refresh tokens (request, answer, lifetimes):
  https://learn.microsoft.com/en-us/linkedin/shared/authentication/programmatic-refresh-tokens
- Rate limits (daily application and member quotas that reset at midnight UTC; 429 when hit;
  no rate-limit headers are documented):
  https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/rate-limits

Observed bodies (public issue threads): ``{"serviceErrorCode": 65600, "message": "Invalid access
token", "status": 401}`` (xcarpentier/react-native-linkedin#80) and ``{"status": 401,
"serviceErrorCode": 65601, "code": "REVOKED_ACCESS_TOKEN", ...}``
(decioferreira/omniauth-linkedin-oauth2#81); a daily throttle reads "Resource level throttle
APPLICATION DAY limit for calls to this resource is reached." (Automattic/wp-calypso#32007 shows
the older wording with ``serviceErrorCode`` 101).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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

LABEL = "LinkedIn"
RESTLI_PROTOCOL_VERSION = "2.0.0"
TOKEN_URL = "https://www.linkedin.com/oauth/v2/accessToken"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LinkedInClient:
    platform = Platform.LINKEDIN
    supports_delete = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = "https://api.linkedin.com",
        api_version: str = "202411",
        *,
        token_url: str = TOKEN_URL,
        app: OAuthApp | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_version = api_version
        self._clock = clock
        self._token_endpoint = TokenEndpoint(LABEL, token_url, app or OAuthApp(), ClientAuth.FORM)

    async def refresh_token(self, tokens: Tokens) -> Tokens:
        return await self._token_endpoint.refresh(self._http, tokens, clock=self._clock)

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        # Rest.li 2.0 wants the whole URN encoded, colons included ("urn%3Ali%3Ashare%3A1").
        url = f"{self._base_url}/rest/posts/{quote(platform_post_id, safe='')}"
        headers = {
            "Authorization": f"Bearer {access_token}",
            "LinkedIn-Version": self._api_version,
            "X-Restli-Protocol-Version": RESTLI_PROTOCOL_VERSION,
        }
        response = await send_delete(self._http, url, headers)
        return self._interpret(response, access_token)

    def _interpret(self, response: httpx.Response, token: str) -> DeleteOutcome:
        status = response.status_code
        if response.is_success:
            # 204 has no body; any other success must at least be JSON, or it is not LinkedIn
            # answering (a captive portal or misrouted proxy can say 200 too).
            if status == 204 or not response.content or read_json(response) is not None:
                return DeleteOutcome.DELETED
            raise unexpected_body(LABEL, response, token)
        if status == 404:
            return DeleteOutcome.ALREADY_GONE
        if status >= 500:
            raise server_error(LABEL, response, token)
        body = read_json(response)
        message = _message(body)
        if status == 401:
            raise platform_error(
                ErrorKind.AUTH,
                f"LinkedIn rejected the access token: {message or 'unauthorized'}",
                token,
                response,
            )
        if status == 429:
            raise platform_error(
                ErrorKind.RATE_LIMITED,
                f"LinkedIn rate limit reached: {message or 'too many requests'}",
                token,
                response,
                retry_after=self._retry_after(response, message),
            )
        if message is None:
            raise unexpected_body(LABEL, response, token)
        raise platform_error(
            ErrorKind.PERMANENT,
            f"LinkedIn refused to delete the post (HTTP {status}): {message}",
            token,
            response,
        )

    def _retry_after(self, response: httpx.Response, message: str | None) -> float | None:
        explicit = parse_retry_after(response.headers.get("retry-after"), self._clock())
        if explicit is not None:
            return explicit
        # LinkedIn sends no Retry-After. A daily quota ("... DAY limit ...") only comes back at
        # midnight UTC, so retrying sooner just burns requests; any other 429 (infrastructure
        # protection, per the docs) gets the caller's own backoff.
        if message and "DAY limit" in message:
            now = self._clock()
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            return (midnight - now).total_seconds()
        return None


def _message(body: object) -> str | None:
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    return None
