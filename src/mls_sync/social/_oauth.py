"""The OAuth 2.0 refresh-token grant (RFC 6749 section 6) as LinkedIn, X, Google, Pinterest and
TikTok speak it: one form POST to the token endpoint, a JSON answer.

The platforms differ only in how the app authenticates (form fields or HTTP Basic), what the
client id field is called, and the shape of their error bodies; all of that is a parameter here.
What an answer means for the user is decided once:
- a refused grant (``invalid_grant``, ``invalid_request``, any other 4xx) is AUTH: the refresh
  token is expired, revoked or already used, and only the user can fix it by reconnecting;
- a refused *client* (``invalid_client``, ``unauthorized_client``) is this app's configuration,
  not the user's fault: TRANSIENT, so the connection is not marked expired and the job waits
  for an operator to fix the client id or secret;
- 429 is RATE_LIMITED, 5xx and non-JSON answers TRANSIENT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar

import httpx

from mls_sync.social._http import (
    parse_retry_after,
    platform_error,
    read_json,
    send,
    server_error,
    unexpected_body,
)
from mls_sync.social.base import ErrorKind, PlatformError, Tokens

_CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
_GRANT_ERRORS = frozenset({"invalid_grant", "invalid_request"})


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class OAuthApp:
    """This application's registration with a platform (its OAuth client)."""

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


class ClientAuth(StrEnum):
    FORM = "form"  # client id and secret as form fields (client_secret_post)
    BASIC = "basic"  # HTTP Basic with id:secret (client_secret_basic)
    # X: Basic for confidential clients, the bare client id in the form for public ones
    BASIC_OR_PUBLIC = "basic_or_public"


@dataclass(frozen=True)
class TokenEndpoint:
    label: str
    url: str
    app: OAuthApp
    client_auth: ClientAuth = ClientAuth.FORM
    id_field: str = "client_id"
    secret_field: str = "client_secret"

    async def refresh(
        self, http: httpx.AsyncClient, tokens: Tokens, *, clock: Callable[[], datetime] = utc_now
    ) -> Tokens:
        """New tokens for `tokens.refresh_token`; the refresh token comes back rotated when the
        platform sends a new one, unchanged when it does not."""
        if not tokens.refresh_token:
            raise PlatformError(
                ErrorKind.AUTH, f"{self.label} connection has no refresh token: reconnect it"
            )
        secrets = (tokens.access_token, tokens.refresh_token, self.app.client_secret)
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        auth = self._authenticate(form)
        response = await send(
            http, "POST", self.url, headers={"Accept": "application/json"}, data=form, auth=auth
        )
        return interpret_token_response(self.label, response, tokens, secrets, clock())

    def _authenticate(self, form: dict[str, str]) -> tuple[str, str] | None:
        app = self.app
        if not app.client_id:
            # Our configuration, not the user's token: retried later, connection left alone.
            raise PlatformError(
                ErrorKind.TRANSIENT,
                f"{self.label} token refresh is not configured: no OAuth client id is set",
            )
        basic = self.client_auth is ClientAuth.BASIC or (
            self.client_auth is ClientAuth.BASIC_OR_PUBLIC and app.client_secret
        )
        if basic:
            return (app.client_id, app.client_secret or "")
        form[self.id_field] = app.client_id
        if app.client_secret:
            form[self.secret_field] = app.client_secret
        return None


def interpret_token_response(
    label: str,
    response: httpx.Response,
    previous: Tokens,
    secrets: tuple[str | None, ...],
    now: datetime,
) -> Tokens:
    status = response.status_code
    if status >= 500:
        raise server_error(label, response, secrets)
    body = read_json(response)
    if status == 429:
        raise platform_error(
            ErrorKind.RATE_LIMITED,
            f"{label} token endpoint rate limit reached",
            secrets,
            response,
            retry_after=parse_retry_after(response.headers.get("retry-after"), now),
        )
    if not isinstance(body, dict):
        raise unexpected_body(f"{label} token endpoint", response, secrets)
    access = body.get("access_token")
    code, description = oauth_error(body)
    if response.is_success and isinstance(access, str) and access and code is None:
        rotated = body.get("refresh_token")
        # Platforms that rotate send a new refresh token; the others send none (or the same).
        keep = rotated if isinstance(rotated, str) and rotated else previous.refresh_token
        return Tokens(
            access_token=access,
            refresh_token=keep,
            expires_at=expires_at(body.get("expires_in"), now),
        )
    detail = ": ".join(part for part in (code, description) if part) or f"HTTP {status}"
    # RFC 6749 5.2: a client that failed to authenticate may be answered 401.
    if code in _CLIENT_ERRORS or (status == 401 and code not in _GRANT_ERRORS):
        raise platform_error(
            ErrorKind.TRANSIENT,
            f"{label} rejected this application's OAuth client credentials ({detail})",
            secrets,
            response,
        )
    if code is None and response.is_success:
        raise unexpected_body(f"{label} token endpoint", response, secrets)
    raise platform_error(
        ErrorKind.AUTH, f"{label} refused to refresh the access token ({detail})", secrets, response
    )


def oauth_error(body: dict[str, object]) -> tuple[str | None, str | None]:
    """(error code, description) from an RFC 6749 error body, or from Pinterest's
    ``{"code", "message"}``; (None, None) when the body reports no error."""
    error = body.get("error")
    if isinstance(error, str) and error:
        description = body.get("error_description")
        return error, description if isinstance(description, str) else None
    message = body.get("message")
    if "code" in body and isinstance(message, str):
        return None if body.get("access_token") else f"code {body['code']}", message
    return None, None


def expires_at(expires_in: object, now: datetime) -> datetime | None:
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return None
    return now + timedelta(seconds=float(expires_in))


class RefreshGrantClient:
    """What a platform client with one REST host and one OAuth token endpoint keeps: its HTTP
    client, the host, the clock, and the token endpoint it refreshes at (`refresh_token`).
    Subclasses say which with `LABEL`, `BASE_URL`, `TOKEN_URL` and `CLIENT_AUTH`."""

    LABEL: ClassVar[str]
    BASE_URL: ClassVar[str]
    TOKEN_URL: ClassVar[str]
    CLIENT_AUTH: ClassVar[ClientAuth]

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str | None = None,
        *,
        token_url: str | None = None,
        app: OAuthApp | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._http = http
        self._base_url = (base_url or self.BASE_URL).rstrip("/")
        self._clock = clock
        self._token_endpoint = TokenEndpoint(
            self.LABEL, token_url or self.TOKEN_URL, app or OAuthApp(), self.CLIENT_AUTH
        )

    async def refresh_token(self, tokens: Tokens) -> Tokens:
        return await self._token_endpoint.refresh(self._http, tokens, clock=self._clock)
