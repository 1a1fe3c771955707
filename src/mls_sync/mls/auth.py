"""How a connection proves who it is: a static bearer token, or OAuth2 client credentials.

Client-credentials tokens are cached (per token endpoint and client id, so connections sharing
a client share its token) until shortly before they expire. A 401/403 from the MLS makes the
transport call `invalidate` and ask once more with a fresh token; only when that also fails is
the connection expired. Credentials are stored encrypted as one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from mls_sync.mls.errors import NETWORK_TIMEOUT, MlsAuthError, MlsRequestError

# Fetch a new token this long before the old one expires, so no request carries a token that
# dies in flight.
EXPIRY_MARGIN_SECONDS = 60.0


class Authenticator(Protocol):
    refreshable: bool

    @property
    def credential_id(self) -> str:
        """Identifies the credential (never the secret itself) for budgets."""
        ...

    async def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


@dataclass
class StaticBearer:
    value: str
    refreshable: bool = False

    @property
    def credential_id(self) -> str:
        return f"token:{self.value}"

    async def token(self) -> str:
        return self.value

    def invalidate(self, token: str) -> None:
        """Nothing to refetch: a rejected static token is a rejected connection."""


@dataclass
class _Cached:
    token: str
    expires_at: float  # time.monotonic()


class TokenCache:
    """Access tokens by (token endpoint, client id), shared by every connection of a process."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], _Cached] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def lock(self, key: tuple[str, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def get(self, key: tuple[str, str]) -> str | None:
        cached = self._tokens.get(key)
        if cached is None or cached.expires_at - EXPIRY_MARGIN_SECONDS <= time.monotonic():
            return None
        return cached.token

    def put(self, key: tuple[str, str], token: str, expires_in: float) -> None:
        self._tokens[key] = _Cached(token, time.monotonic() + expires_in)

    def drop(self, key: tuple[str, str], token: str) -> None:
        cached = self._tokens.get(key)
        if cached is not None and cached.token == token:
            del self._tokens[key]


class OAuth2ClientCredentials:
    refreshable = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None,
        cache: TokenCache,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._cache = cache
        self._key = (token_url, client_id)
        self.token_requests = 0

    @property
    def credential_id(self) -> str:
        return f"client:{self._token_url}\0{self._client_id}"

    async def token(self) -> str:
        cached = self._cache.get(self._key)
        if cached is not None:
            return cached
        # One fetch per client at a time: concurrent batches wait for it instead of each
        # asking the token endpoint.
        async with self._cache.lock(self._key):
            cached = self._cache.get(self._key)
            if cached is None:
                cached, expires_in = await self._fetch()
                self._cache.put(self._key, cached, expires_in)
            return cached

    def invalidate(self, token: str) -> None:
        self._cache.drop(self._key, token)

    async def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        if self._scope:
            form["scope"] = self._scope
        self.token_requests += 1
        try:
            response = await self._http.post(
                self._token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.TimeoutException:
            raise MlsRequestError(NETWORK_TIMEOUT) from None
        except httpx.TransportError as exc:
            raise MlsRequestError(f"Network error: {type(exc).__name__}") from None
        # RFC 6749 5.2: invalid_client / unauthorized_client come as 400 or 401.
        if response.status_code in (400, 401, 403):
            raise MlsAuthError(f"token endpoint HTTP {response.status_code}")
        if response.status_code >= 300:
            raise MlsRequestError(f"MLS token endpoint error: HTTP {response.status_code}")
        try:
            body = response.json()
            token = body["access_token"]
            expires_in = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise MlsRequestError("Malformed MLS token response", retryable=False) from None
        if not isinstance(token, str) or not token:
            raise MlsRequestError("Malformed MLS token response", retryable=False)
        return token, expires_in


def parse_credentials(plaintext: str, auth_kind: str) -> dict[str, Any]:
    """The decrypted credentials blob. Bearer connections made before the blob existed hold
    the bare token, which is accepted as `{"token": ...}`."""
    try:
        value = json.loads(plaintext)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        if auth_kind == "bearer":
            return {"token": plaintext}
        raise ValueError("OAuth2 credentials must be a JSON object")
    return value


def encode_credentials(credentials: dict[str, Any]) -> str:
    return json.dumps(credentials, sort_keys=True)
