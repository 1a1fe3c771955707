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

Versions: ``LinkedIn-Version`` is a setting (`social/versions.py` has the published sunset
dates). A version past its sunset answers every call with HTTP 426 ``{"status": 426, "code":
"NONEXISTENT_VERSION", "message": "Requested version 202411 is not active"}`` (n8n-io/n8n#28967,
ComposioHQ/composio#4320); that is VERSION_RETIRED: our configuration, so jobs wait uncounted and
the connection stays as it is. `probe_api_version` reads one post URN, with the user's token
where the caller has one (GET /api/doctor) and without for the operator's doctor: a 426 is
proof of retirement; any other answer is not proof of the opposite (whether LinkedIn judges the
version before the token is not documented), which is why `mls-sync doctor` also goes by the
published sunset dates in `social/versions.py`.

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

from mls_sync.config import LINKEDIN_DEFAULT
from mls_sync.social._http import (
    parse_retry_after,
    platform_error,
    read_json,
    send,
    send_delete,
    server_error,
    unexpected_body,
)
from mls_sync.social._oauth import ClientAuth, OAuthApp, TokenEndpoint
from mls_sync.social.base import DeleteOutcome, ErrorKind, Platform, PlatformError, Tokens
from mls_sync.social.versions import retired_message

LABEL = "LinkedIn"
RESTLI_PROTOCOL_VERSION = "2.0.0"
TOKEN_URL = "https://www.linkedin.com/oauth/v2/accessToken"
RETIRED_VERSION_CODE = "NONEXISTENT_VERSION"
# Any post URN does for the probe: the version is checked before the token and the post.
PROBE_URN = "urn:li:share:0"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LinkedInClient:
    platform = Platform.LINKEDIN
    supports_delete = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = "https://api.linkedin.com",
        api_version: str = LINKEDIN_DEFAULT,
        *,
        token_url: str = TOKEN_URL,
        app: OAuthApp | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self.api_version = api_version
        self._clock = clock
        self._token_endpoint = TokenEndpoint(LABEL, token_url, app or OAuthApp(), ClientAuth.FORM)

    async def refresh_token(self, tokens: Tokens) -> Tokens:
        return await self._token_endpoint.refresh(self._http, tokens, clock=self._clock)

    def _post_url(self, urn: str) -> str:
        # Rest.li 2.0 wants the whole URN encoded, colons included ("urn%3Ali%3Ashare%3A1").
        return f"{self._base_url}/rest/posts/{quote(urn, safe='')}"

    def _headers(self, access_token: str | None) -> dict[str, str]:
        headers = {
            "LinkedIn-Version": self.api_version,
            "X-Restli-Protocol-Version": RESTLI_PROTOCOL_VERSION,
        }
        if access_token:
            headers["Authorization"] = f"Bearer {access_token}"
        return headers

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        url = self._post_url(platform_post_id)
        response = await send_delete(self._http, url, self._headers(access_token))
        return self._interpret(response, access_token)

    async def probe_api_version(self, access_token: str | None = None) -> None:
        response = await send(
            self._http, "GET", self._post_url(PROBE_URN), headers=self._headers(access_token)
        )
        retired = self._retired(response, access_token or "")
        if retired is not None:
            raise retired
        if response.status_code >= 500:
            raise server_error(LABEL, response, access_token or ())

    def _retired(self, response: httpx.Response, token: str) -> PlatformError | None:
        body = read_json(response)
        code = body.get("code") if isinstance(body, dict) else None
        if response.status_code != 426 and code != RETIRED_VERSION_CODE:
            return None
        detail = f"LinkedIn refused the call: {_message(body) or 'version not active'}"
        return platform_error(
            ErrorKind.VERSION_RETIRED,
            retired_message(self.platform, self.api_version, detail),
            token,
            response,
        ).with_version(self.api_version)

    def _interpret(self, response: httpx.Response, token: str) -> DeleteOutcome:
        status = response.status_code
        if (retired := self._retired(response, token)) is not None:
            raise retired
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
