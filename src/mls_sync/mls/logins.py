"""MLS logins that renew: OAuth2 with a refresh token, and the OAuth2 password grant.

- `oauth2_refresh`: an access token and a refresh token the user got by signing in (Spark's
  per-agent OpenID Connect, sparkplatform.com/docs/authentication/openid_connect_authentication,
  token endpoint https://sparkplatform.com/openid/token; any generic OAuth2 server). Each
  access token is renewed with the refresh token (RFC 6749 section 6); a server that rotates
  refresh tokens sends a new one each time, and the old one stops working.
- `oauth2_password`: the member's MLS id and password (Rapattoni: 7-day tokens with a refresh
  token, ../VENDORS.md). Renewed with the refresh token while it lasts, else signed in again
  with the password (RFC 6749 section 4.3).

The login's state (access token, expiry, refresh token) lives in the feed's encrypted
credentials, so it survives restarts and is shared by every worker. Three rules keep a login
alive for months without its user:
1. A renewed login is saved (committed) before its access token is used: a rotated refresh
   token is never only in memory, so a crash right after a renewal loses nothing.
2. One renewal per credential at a time across workers (`LoginStore.exclusive`), and whoever
   waited re-reads the saved state first: a refresh token sent twice is refused by servers
   that rotate them (and may revoke the whole family, RFC 9700 4.14.2).
3. Only a refused renewal ends the login (`MlsAuthError`: the feed becomes expired with "MLS
   connection expired. Please re-authenticate."); a network error or a 5xx is retried next run.

Why not Authlib's AsyncOAuth2Client: since Authlib 1.8 (2026-08) its httpx integration is
built on httpx2 and falls back to httpx with a deprecation warning (authlib/authlib #904,
#909); our egress policy is an httpx transport, and a client class that may switch HTTP
libraries under it would stop applying it silently. The grants are small (one form POST) and
share the hardened answer parsing of mls/auth.py.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx

from mls_sync.mls.auth import (
    EXPIRY_MARGIN_SECONDS,
    TokenAnswer,
    TokenCache,
    credential_identity,
    request_token,
)
from mls_sync.mls.errors import MlsAuthError
from mls_sync.observability.redact import SECRETS

LOGIN_KINDS = ("oauth2_refresh", "oauth2_password")
# A login's access token is kept for its stated lifetime up to this (Rapattoni's last 7 days):
# it is stored, not only cached, and a 401 before its time renews it anyway.
MAX_LOGIN_TOKEN_SECONDS = 30 * 86400.0


def new_login_id() -> str:
    """A login's identity while its tokens rotate: made once, when the user signs in."""
    return secrets.token_hex(16)


def login_id_of(credentials: dict[str, Any]) -> str | None:
    """The login a credentials blob holds (a blob from before login ids: its client id)."""
    value = credentials.get("login_id") or credentials.get("client_id")
    return str(value) if value else None


@dataclass(frozen=True)
class LoginState:
    kind: str
    token_url: str
    client_id: str
    login_id: str
    client_secret: str | None = None
    scope: str | None = None
    refresh_token: str | None = None
    access_token: str | None = None
    expires_at: float | None = None  # wall-clock seconds (time.time()), shared by workers
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_credentials(
        cls, kind: str, credentials: dict[str, Any], *, token_url: str | None
    ) -> LoginState:
        """The decrypted credentials blob; raises KeyError or ValueError when it cannot be one."""
        url = credentials.get("token_url") or token_url
        if not url:
            raise KeyError("token_url")
        if kind == "oauth2_refresh" and not credentials.get("refresh_token"):
            raise KeyError("refresh_token")
        if kind == "oauth2_password" and not (
            credentials.get("username") and credentials.get("password")
        ):
            raise KeyError("username and password")
        expires_at = credentials.get("expires_at")
        state = cls(
            kind=kind,
            token_url=str(url),
            client_id=str(credentials["client_id"]),
            login_id=login_id_of(credentials) or str(credentials["client_id"]),
            client_secret=_text(credentials.get("client_secret")),
            scope=_text(credentials.get("scope")),
            refresh_token=_text(credentials.get("refresh_token")),
            access_token=_text(credentials.get("access_token")),
            expires_at=float(expires_at) if expires_at is not None else None,
            username=_text(credentials.get("username")),
            password=_text(credentials.get("password")),
        )
        for secret in (state.refresh_token, state.access_token, state.password):
            if secret:
                SECRETS.add(secret)
        return state

    def to_credentials(self) -> dict[str, Any]:
        blob = {
            "token_url": self.token_url,
            "client_id": self.client_id,
            "login_id": self.login_id,
            "client_secret": self.client_secret,
            "scope": self.scope,
            "refresh_token": self.refresh_token,
            "access_token": self.access_token,
            "expires_at": self.expires_at,
            "username": self.username,
            "password": self.password,
        }
        return {key: value for key, value in blob.items() if value is not None}

    def usable(self, now: float) -> bool:
        """Whether the access token may still be sent (not within a minute of its expiry)."""
        return bool(self.access_token) and (
            self.expires_at is not None and self.expires_at - EXPIRY_MARGIN_SECONDS > now
        )

    def renewed(self, answer: TokenAnswer, now: float) -> LoginState:
        """After a token answer: the new access token, and the new refresh token where the
        server rotated it (kept as it was where the server sent none)."""
        return replace(
            self,
            access_token=answer.access_token,
            expires_at=now + answer.expires_in,
            refresh_token=answer.refresh_token or self.refresh_token,
        )


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


class LoginStore(Protocol):
    """Where a login's state is kept between runs and shared between workers."""

    async def load(self) -> dict[str, Any] | None:
        """The saved credentials now (another worker may have renewed them); None when the
        feed is gone."""
        ...

    async def save(self, credentials: dict[str, Any]) -> None:
        """Keep the renewed credentials: committed when this returns. Credentials replaced
        meanwhile by the user (a new sign-in, another `login_id`) are left as they are."""
        ...

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        """Held while renewing: one renewal per login across every worker."""
        ...


class MemoryLoginStore:
    """A login kept in memory only, for a client built without a store (unit tests): a
    renewal lives as long as the client."""

    def __init__(self, credentials: dict[str, Any] | None = None) -> None:
        self.credentials = credentials
        self._lock = asyncio.Lock()

    async def load(self) -> dict[str, Any] | None:
        return self.credentials

    async def save(self, credentials: dict[str, Any]) -> None:
        self.credentials = credentials

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._lock:
            yield


class OAuth2Login:
    """An authenticator (mls/auth.py's protocol) for a login that renews itself."""

    refreshable = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        state: LoginState,
        store: LoginStore,
        *,
        base_url: str,
        cache: TokenCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._state = state
        self._store = store
        self._cache = cache
        self._clock = clock
        # The refresh token rotates, so it cannot be part of the identity: the login id,
        # made when the user signed in, stands for it (with the host, endpoint and client).
        self._key = credential_identity(
            "login", base_url, state.token_url, state.client_id, state.login_id
        )
        self._refused: set[str] = set()  # access tokens the MLS refused before their time
        self.renewals = 0  # token requests this authenticator made

    @property
    def credential_id(self) -> str:
        return self._key

    @property
    def state(self) -> LoginState:
        return self._state

    async def token(self) -> str:
        if self._usable(self._state):
            return str(self._state.access_token)
        # One renewal per login in this process (the lock), and across processes (the store).
        async with self._cache.lock(self._key), self._store.exclusive():
            saved = await self._store.load()
            # Another worker may have renewed this login meanwhile (the same login id; the
            # user may also have replaced it with credentials of another kind altogether).
            if saved is not None and login_id_of(saved) == self._state.login_id:
                self._state = LoginState.from_credentials(
                    self._state.kind, saved, token_url=self._state.token_url
                )
            if not self._usable(self._state):
                renewed = await self._renew()
                await self._store.save(renewed.to_credentials())  # before it is ever used
                self._state = renewed
            return str(self._state.access_token)

    def invalidate(self, token: str) -> None:
        """The MLS refused `token` before its time: renew on the next request (the saved
        state still holds it, so it is remembered as refused, not only dropped)."""
        self._refused.add(token)

    def _usable(self, state: LoginState) -> bool:
        return state.usable(self._clock()) and state.access_token not in self._refused

    async def _renew(self) -> LoginState:
        state = self._state
        if state.refresh_token:
            try:
                return state.renewed(await self._grant(refresh_form(state)), self._clock())
            except MlsAuthError:
                if state.kind != "oauth2_password":
                    raise  # the user must sign in again
                # The refresh token is spent or revoked: the password signs in afresh.
                state = replace(state, refresh_token=None)
        if state.kind == "oauth2_password":
            return state.renewed(await self._grant(password_form(state)), self._clock())
        raise MlsAuthError("the MLS login has no refresh token")

    async def _grant(self, form: dict[str, str]) -> TokenAnswer:
        self.renewals += 1
        return await request_token(
            self._http, self._state.token_url, form, max_seconds=MAX_LOGIN_TOKEN_SECONDS
        )


def refresh_form(state: LoginState) -> dict[str, str]:
    """RFC 6749 section 6, the client authenticated in the body (client_secret_post)."""
    return _with_client(
        state, {"grant_type": "refresh_token", "refresh_token": str(state.refresh_token)}
    )


def password_form(state: LoginState) -> dict[str, str]:
    """RFC 6749 section 4.3: the member's MLS id as the username."""
    form = {
        "grant_type": "password",
        "username": str(state.username),
        "password": str(state.password),
    }
    return _with_client(state, form)


def _with_client(state: LoginState, form: dict[str, str]) -> dict[str, str]:
    form["client_id"] = state.client_id
    if state.client_secret:
        form["client_secret"] = state.client_secret
    if state.scope:
        form["scope"] = state.scope
    return form
