"""Delete a Pin through the Pinterest API v5.

Request: ``DELETE https://api.pinterest.com/v5/pins/{pin_id}`` with the user's access token as
Bearer (scopes ``pins:read``, ``pins:write``, ``boards:read``); success is ``204 No Content``.
Errors are ``{"code": <int>, "message": <str>}``; the HTTP status says what kind: 401 for a bad
or expired token, 404 for a Pin that is gone, 429 when throttled.

Tokens: access tokens live 30 days. They are refreshed at ``POST
https://api.pinterest.com/v5/oauth/token`` with HTTP Basic ``app_id:app_secret`` and the form
``grant_type=refresh_token&refresh_token=...``. With continuous refresh (the default for new
apps) every answer carries a new refresh token, which replaces the stored one.

Documentation relied on:
- Delete Pin (``DELETE /pins/{pin_id}``, 204) and Generate OAuth access token
  (``POST /oauth/token``, Basic auth, refresh grant, ``refresh_on`` / continuous refresh):
  https://developers.pinterest.com/docs/api/v5/ and the generated reference
  https://github.com/pinterest/pinterest-python-generated-api-client/blob/main/docs/OauthApi.md
- Authentication and scopes:
  https://developers.pinterest.com/docs/getting-started/set-up-authentication-and-authorization/

Modelled (no public example found): the 404 body ``{"code": 50, "message": "Pin not found."}``.
Observed: a token request with a bad Basic header answers ``{"code": 2, "message":
"Authentication failed."}``; throttling answers 429 ``{"code": 29, "message": "Rate limit
exceeded."}`` without a documented Retry-After.
"""

from __future__ import annotations

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
from mls_sync.social._oauth import ClientAuth, RefreshGrantClient
from mls_sync.social.base import DeleteOutcome, ErrorKind, Platform

LABEL = "Pinterest"
TOKEN_URL = "https://api.pinterest.com/v5/oauth/token"


class PinterestClient(RefreshGrantClient):
    LABEL = LABEL
    BASE_URL = "https://api.pinterest.com"
    TOKEN_URL = TOKEN_URL
    CLIENT_AUTH = ClientAuth.BASIC
    platform = Platform.PINTEREST
    supports_delete = True

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        url = f"{self._base_url}/v5/pins/{quote(platform_post_id, safe='')}"
        headers = {"Authorization": f"Bearer {access_token}"}
        response = await send_delete(self._http, url, headers)
        return _interpret(response, access_token)


def _interpret(response: httpx.Response, token: str) -> DeleteOutcome:
    status = response.status_code
    if response.is_success:
        if status == 204 or not response.content or read_json(response) is not None:
            return DeleteOutcome.DELETED
        raise unexpected_body(LABEL, response, token)
    if status >= 500:
        raise server_error(LABEL, response, token)
    body = read_json(response)
    message = body.get("message") if isinstance(body, dict) else None
    detail = message if isinstance(message, str) and message else f"HTTP {status}"
    if status == 404:
        return DeleteOutcome.ALREADY_GONE
    if status == 401:
        raise platform_error(
            ErrorKind.AUTH, f"{LABEL} rejected the access token: {detail}", token, response
        )
    if status == 429:
        raise platform_error(
            ErrorKind.RATE_LIMITED,
            f"{LABEL} rate limit reached: {detail}",
            token,
            response,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if not isinstance(body, dict):
        raise unexpected_body(LABEL, response, token)
    raise platform_error(
        ErrorKind.PERMANENT,
        f"{LABEL} refused to delete the Pin (HTTP {status}): {detail}",
        token,
        response,
    )
