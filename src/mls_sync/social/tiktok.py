"""TikTok: its public API cannot delete a published video, so a person must.

The Content Posting API can upload and publish (``/v2/post/publish/video/init/``,
``/v2/post/publish/inbox/video/init/``) but offers no endpoint that deletes or hides a published
post. `delete_post` therefore makes no request and always refuses with `REFUSAL`; the outbox
marks the post `unpublish_failed` and lists it in the sync result for a person to remove in the
app. No token is refreshed for that (`supports_delete` is False).

Tokens (kept so a connection stays usable for what the API can do): access tokens live 24 hours
(the newest docs say 2 hours), refresh tokens 365 days, refreshed at ``POST
https://open.tiktokapis.com/v2/oauth/token/`` with the form ``client_key``, ``client_secret``,
``grant_type=refresh_token``, ``refresh_token``. Refresh tokens rotate: the previous one stops
working once a new one is issued.

Documentation relied on:
- Content Posting API reference (Direct Post, Upload):
  https://developers.tiktok.com/doc/content-posting-api-reference-direct-post
  and https://developers.tiktok.com/doc/content-posting-api-reference-upload-video
- Manage user access tokens (refresh request and answer ``access_token``, ``expires_in``,
  ``refresh_token``, ``refresh_expires_in``, ``open_id``, ``scope``; rotation):
  https://developers.tiktok.com/doc/oauth-user-access-token-management
  and https://developers.tiktok.com/docs/en/oauth-refresh-a-user-access-token
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx

from mls_sync.social._oauth import ClientAuth, OAuthApp, TokenEndpoint, utc_now
from mls_sync.social.base import DeleteOutcome, ErrorKind, Platform, PlatformError, Tokens

LABEL = "TikTok"
REFUSAL = "TikTok does not allow deleting posts through its API: remove it in the app"
TOKEN_URL = "https://open.tiktokapis.com/v2/oauth/token/"


class TikTokClient:
    platform = Platform.TIKTOK
    supports_delete = False

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token_url: str = TOKEN_URL,
        app: OAuthApp | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._http = http
        self._clock = clock
        self._token_endpoint = TokenEndpoint(
            LABEL, token_url, app or OAuthApp(), ClientAuth.FORM, id_field="client_key"
        )

    async def delete_post(self, platform_post_id: str, access_token: str) -> DeleteOutcome:
        raise PlatformError(ErrorKind.PERMANENT, REFUSAL)

    async def refresh_token(self, tokens: Tokens) -> Tokens:
        return await self._token_endpoint.refresh(self._http, tokens, clock=self._clock)
