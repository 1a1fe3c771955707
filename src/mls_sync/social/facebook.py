"""Delete a Facebook Page post through the Graph API.

Request: ``DELETE https://graph.facebook.com/{version}/{page-post-id}`` with the Page access token
as ``Authorization: Bearer``; success is ``{"success": true}``.

Tokens: Graph has no refresh-token grant. A long-lived user token (about 60 days) comes from
``GET /{version}/oauth/access_token?grant_type=fb_exchange_token&client_id&client_secret
&fb_exchange_token={short-lived token}``, and Page tokens derived from it do not expire; the
exchange needs a token that is still valid, so an expired or revoked token can only be replaced
by the user logging in again. `refresh_token` therefore always answers AUTH, and
`exchange_token` is offered for the connect flow.

Documentation relied on:
- Pages API, Posts (create, update, delete a Page post; Page access token, pages_manage_posts):
  https://developers.facebook.com/docs/pages-api/posts
- Graph API error handling (error object ``message/type/code/error_subcode/fbtrace_id``;
  190 = access token expired, subcode 463 = expired, 460 = password changed; 1/2 = temporary;
  4/17/341 = throttling): https://developers.facebook.com/docs/graph-api/guides/error-handling
- Long-lived tokens (``fb_exchange_token``; answer ``{"access_token", "token_type",
  "expires_in"}``): https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived
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

from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

import httpx

from mls_sync.social._graph import common_error, graph_error, token_answer
from mls_sync.social._http import (
    platform_error,
    read_json,
    send,
    send_delete,
    server_error,
    unexpected_body,
)
from mls_sync.social._oauth import OAuthApp, utc_now
from mls_sync.social.base import DeleteOutcome, ErrorKind, Platform, Tokens

LABEL = "Facebook"


class FacebookClient:
    platform = Platform.FACEBOOK
    supports_delete = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = "https://graph.facebook.com",
        api_version: str = "v21.0",
        *,
        app: OAuthApp | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_version = api_version
        self._app = app or OAuthApp()
        self._clock = clock

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        url = f"{self._base_url}/{self._api_version}/{quote(platform_post_id, safe='')}"
        # The header keeps the token out of URLs, and so out of proxy and access logs.
        headers = {"Authorization": f"Bearer {access_token}"}
        response = await send_delete(self._http, url, headers)
        return _interpret(response, access_token)

    async def refresh_token(self, tokens: Tokens) -> Tokens:
        # No HTTP call: Graph has no grant that revives an expired or revoked token.
        raise platform_error(
            ErrorKind.AUTH,
            "Facebook Page tokens cannot be refreshed: reconnect Facebook",
            tokens.access_token,
        )

    async def exchange_token(self, short_lived_token: str) -> Tokens:
        """A long-lived user token for a short-lived one (``fb_exchange_token``)."""
        app = self._app
        if not app.client_id or not app.client_secret:
            raise platform_error(
                ErrorKind.PERMANENT,
                "Facebook token exchange is not configured: no app id or app secret is set",
                short_lived_token,
            )
        # Graph takes these as query parameters only; the secret never reaches our logs
        # because errors are redacted and httpx does not log URLs by default.
        params = {
            "grant_type": "fb_exchange_token",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "fb_exchange_token": short_lived_token,
        }
        url = f"{self._base_url}/{self._api_version}/oauth/access_token"
        response = await send(self._http, "GET", url, params=params)
        secrets = (short_lived_token, app.client_secret)
        return token_answer(LABEL, response, Tokens(short_lived_token), secrets, self._clock())


def _interpret(response: httpx.Response, token: str) -> DeleteOutcome:
    body = read_json(response)
    error = graph_error(body)
    if error is not None:
        known = common_error(LABEL, response, error, token)
        if known is not None and known.kind is ErrorKind.AUTH:
            raise known
        if error.cannot_load_object:
            return DeleteOutcome.ALREADY_GONE
        if known is not None:
            raise known
        if response.status_code == 404:
            return DeleteOutcome.ALREADY_GONE
        raise platform_error(
            ErrorKind.PERMANENT,
            f"Facebook refused to delete the post: {error.message}",
            token,
            response,
        )
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
