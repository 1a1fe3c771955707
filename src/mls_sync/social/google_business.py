"""Delete a Google Business Profile local post through the My Business API v4.

Request: ``DELETE https://mybusiness.googleapis.com/v4/{name}`` where ``name`` is the post's
resource name ``accounts/{account}/locations/{location}/localPosts/{post}``, with the user's
OAuth access token as Bearer; success is an empty body (or an empty JSON object), and a post that
does not exist answers ``NOT_FOUND``.

Tokens: Google access tokens live about an hour. They are refreshed at ``POST
https://oauth2.googleapis.com/token`` (form: ``client_id``, ``client_secret``,
``grant_type=refresh_token``, ``refresh_token``); the answer holds a new access token and no new
refresh token. ``invalid_grant`` ("Token has been expired or revoked.") means the user revoked
access, changed password or the refresh token went unused for six months: only reconnecting
helps.

Documentation relied on:
- accounts.locations.localPosts.delete (request, empty body, NOT_FOUND, scope
  ``https://www.googleapis.com/auth/business.manage``):
  https://developers.google.com/my-business/reference/rest/v4/accounts.locations.localPosts/delete
- Refreshing an access token (offline access), and refresh token expiration:
  https://developers.google.com/identity/protocols/oauth2/web-server#offline
- Google API errors (``{"error": {"code", "message", "status", "details"}}``; 401
  UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 429 RESOURCE_EXHAUSTED with a
  ``google.rpc.RetryInfo`` detail, 503 UNAVAILABLE): https://cloud.google.com/apis/design/errors

Observed: ``invalid_grant`` with "Token has been expired or revoked." is the common answer to a
dead refresh token (porjo/youtubeuploader#181, googleapis/google-api-php-client#2266).
"""

from __future__ import annotations

import re
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

LABEL = "Google Business Profile"
TOKEN_URL = "https://oauth2.googleapis.com/token"
_POST_NAME = re.compile(r"accounts/[^/]+/locations/[^/]+/localPosts/[^/]+")
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


class GoogleBusinessClient(RefreshGrantClient):
    LABEL = LABEL
    BASE_URL = "https://mybusiness.googleapis.com"
    TOKEN_URL = TOKEN_URL
    CLIENT_AUTH = ClientAuth.FORM
    platform = Platform.GOOGLE_BUSINESS
    supports_delete = True

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        name = platform_post_id.strip("/")
        if not _POST_NAME.fullmatch(name):
            # A malformed name would address some other resource, or none: never send it.
            raise platform_error(
                ErrorKind.PERMANENT,
                f"{LABEL} post id {name!r} is not a local post name "
                "(accounts/*/locations/*/localPosts/*)",
                access_token,
            )
        url = f"{self._base_url}/v4/{quote(name, safe='/')}"
        headers = {"Authorization": f"Bearer {access_token}"}
        response = await send_delete(self._http, url, headers)
        return self._interpret(response, access_token)

    def _interpret(self, response: httpx.Response, token: str) -> DeleteOutcome:
        status = response.status_code
        body = read_json(response)
        error = body.get("error") if isinstance(body, dict) else None
        if response.is_success and error is None:
            if not response.content or isinstance(body, dict):
                return DeleteOutcome.DELETED
            raise unexpected_body(LABEL, response, token)
        if status >= 500:
            raise server_error(LABEL, response, token)
        code = error.get("status") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        detail = str(message or code or f"HTTP {status}")
        if status == 404 or code == "NOT_FOUND":
            return DeleteOutcome.ALREADY_GONE
        if status == 401 or code == "UNAUTHENTICATED":
            raise platform_error(
                ErrorKind.AUTH, f"{LABEL} rejected the access token: {detail}", token, response
            )
        if status == 429 or code == "RESOURCE_EXHAUSTED":
            raise platform_error(
                ErrorKind.RATE_LIMITED,
                f"{LABEL} rate limit reached: {detail}",
                token,
                response,
                retry_after=_retry_after(response, error),
            )
        if not isinstance(error, dict):
            raise unexpected_body(LABEL, response, token)
        raise platform_error(
            ErrorKind.PERMANENT,
            f"{LABEL} refused to delete the post (HTTP {status}): {detail}",
            token,
            response,
        )


def _retry_after(response: httpx.Response, error: object) -> float | None:
    explicit = parse_retry_after(response.headers.get("retry-after"))
    if explicit is not None:
        return explicit
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == _RETRY_INFO:
            delay = detail.get("retryDelay")  # a protobuf Duration in JSON: "30s", "1.5s"
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(float(delay[:-1]), 0.0)
                except ValueError:
                    return None
    return None
