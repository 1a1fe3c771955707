"""Take an Instagram post down through Meta's Graph API, or say plainly that Meta will not.

Two logins, two clients (a connection's `login` picks one, see `registry.client_for`):

- **Facebook Login** (`InstagramFacebookLoginClient`): ``DELETE
  https://graph.facebook.com/{version}/{ig-media-id}`` with the Facebook Page's token, which
  needs ``instagram_manage_contents``. This is the login an app must use for deletes to work:
  Meta deletes whole published posts, reels and carousels this way (not single carousel items).
  The token is a Page token, so it is read like Facebook's (it does not expire and cannot be
  refreshed; `verify_token` checks it still works) and the Facebook API version applies.
- **Instagram Login** (`InstagramClient`): ``DELETE https://graph.instagram.com/{version}/
  {ig-media-id}`` with the Instagram User token. That host does not delete published media, so
  the delete is tried and Meta's refusal reported for a person to act on. Graph
answers an id it will not delete exactly as one it cannot find (code 100, "Unsupported delete
request. Object with ID '...' does not exist, cannot be loaded due to missing permissions, or
does not support this operation"), so on that answer the media is read back
(``GET /{version}/{ig-media-id}?fields=id``): still readable means Meta refused, and the post
becomes `unpublish_failed` with `REFUSAL` for a person to remove in the app; unreadable means it
is gone. Never a silent success.

Tokens: long-lived Instagram User tokens last 60 days and are extended, while still valid and at
least 24 hours old, with ``GET https://graph.instagram.com/refresh_access_token
?grant_type=ig_refresh_token&access_token={token}``; the answer is ``{"access_token",
"token_type", "expires_in"}``. There is no refresh token: an expired token cannot be refreshed,
which is why the outbox refreshes ahead of the stored expiry.

Documentation relied on:
- IG Media (operations, hosts, permissions ``instagram_business_basic``,
  ``instagram_business_content_publish``; deleting with Facebook Login and
  ``instagram_manage_contents``):
  https://developers.facebook.com/docs/instagram-platform/reference/instagram-media
- Refresh Access Token:
  https://developers.facebook.com/documentation/instagram-platform/reference/refresh_access_token
- Graph errors and throttling (shared with Facebook, see `_graph.py`); Instagram accounts are
  throttled under Business Use Case code 80002:
  https://developers.facebook.com/docs/graph-api/overview/rate-limiting
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

import httpx

from mls_sync.config import GRAPH_DEFAULT
from mls_sync.social._graph import (
    PERMISSION_CODES,
    GraphError,
    common_error,
    graph_error,
    probe_version,
    still_there,
    token_answer,
)
from mls_sync.social._http import platform_error, read_json, send, server_error, unexpected_body
from mls_sync.social._oauth import utc_now
from mls_sync.social.base import DeleteOutcome, ErrorKind, Platform, PlatformError, Tokens
from mls_sync.social.facebook import FacebookClient

LABEL = "Instagram"
REFUSAL = "Instagram does not allow deleting this post through its API: remove it in the app"
TOKEN_URL = "https://graph.instagram.com/refresh_access_token"


class InstagramFacebookLoginClient(FacebookClient):
    """Instagram media deleted through Facebook Login: Facebook's host, version and Page token."""

    platform = Platform.INSTAGRAM
    label = LABEL
    permission = "instagram_manage_contents"
    version_platform = Platform.FACEBOOK


class InstagramClient:
    platform = Platform.INSTAGRAM
    supports_delete = True  # it is tried; Meta's answer decides
    # No refresh token: the access token extends itself, only while still valid, so the
    # token care keeps it alive ahead of its expiry (sync/token_care.py).
    refreshes_with_access_token = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = "https://graph.instagram.com",
        api_version: str = GRAPH_DEFAULT,
        *,
        token_url: str = TOKEN_URL,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self.api_version = api_version
        self._token_url = token_url
        self._clock = clock

    def _media_url(self, media_id: str) -> str:
        return f"{self._base_url}/{self.api_version}/{quote(media_id, safe='')}"

    def _known(
        self, response: httpx.Response, error: GraphError, token: str
    ) -> PlatformError | None:
        return common_error(
            LABEL, response, error, token, platform=self.platform, api_version=self.api_version
        )

    async def probe_api_version(self, access_token: str | None = None) -> None:
        await probe_version(self._http, self._media_url("me"), access_token, self._known, LABEL)

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        url = self._media_url(platform_post_id)
        headers = {"Authorization": f"Bearer {access_token}"}
        response = await send(self._http, "DELETE", url, headers=headers)
        body = read_json(response)
        error = graph_error(body)
        if error is None:
            if response.status_code >= 500:
                raise server_error(LABEL, response, access_token)
            if response.status_code == 404:
                return DeleteOutcome.ALREADY_GONE
            if response.status_code == 401:
                raise platform_error(
                    ErrorKind.AUTH, "Instagram rejected the access token", access_token, response
                )
            if not response.is_success or not isinstance(body, dict):
                raise unexpected_body(LABEL, response, access_token)
            if body.get("success") is True:
                return DeleteOutcome.DELETED
            raise _refused(response)  # {"success": false}
        return await self._after_error(platform_post_id, access_token, response, error)

    async def _after_error(
        self, media_id: str, token: str, response: httpx.Response, error: GraphError
    ) -> DeleteOutcome:
        known = self._known(response, error, token)
        if known is not None and error.code in PERMISSION_CODES:
            # On this host a permission error is Meta saying it will not delete (Instagram
            # Login has no delete permission to grant), not a lapsed grant: reconnecting the
            # same way cannot help, so a person removes the post in the app.
            raise _refused(response)
        if known is not None:
            raise known
        if error.cannot_load_object or response.status_code == 404:
            if await still_there(self._http, self._media_url(media_id), token, self._known, LABEL):
                raise _refused(response)
            return DeleteOutcome.ALREADY_GONE
        # Permission and capability errors (3, 10, 200-299) and anything else Graph says no
        # with: the post is still up, and only a person can take it down.
        raise _refused(response)

    async def refresh_token(self, tokens: Tokens) -> Tokens:
        params = {"grant_type": "ig_refresh_token", "access_token": tokens.access_token}
        response = await send(self._http, "GET", self._token_url, params=params)
        return token_answer(LABEL, response, tokens, tokens.access_token, self._clock())


def _refused(response: httpx.Response) -> PlatformError:
    return PlatformError(ErrorKind.PERMANENT, REFUSAL, status_code=response.status_code)
