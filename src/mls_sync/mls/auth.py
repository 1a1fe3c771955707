"""How a connection proves who it is: a static bearer token, or OAuth2 client credentials
(logins that renew, with a refresh token or a password, are in mls/logins.py).

Client-credentials tokens are cached until shortly before they expire, by the credential's
identity: a digest over the MLS host, the token endpoint, the client id **and the secret**.
Connections that truly share a credential share its token (and its request budget); a user who
names another's client id and token endpoint with any other secret, or another host, never gets
that user's token: their own token request is made, and refused. A 401/403 from the MLS makes the
transport call `invalidate` and ask once more with a fresh token; only when that also fails is
the connection expired. Credentials are stored encrypted as one JSON object.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from mls_sync.egress import EgressRefused
from mls_sync.mls.errors import EGRESS_REFUSED, NETWORK_TIMEOUT, MlsAuthError, MlsRequestError
from mls_sync.observability.redact import SECRETS

# Fetch a new token this long before the old one expires, so no request carries a token that
# dies in flight.
EXPIRY_MARGIN_SECONDS = 60.0
MAX_TOKEN_SECONDS = 86400.0
MAX_TOKEN_LENGTH = 8192  # an Authorization header this long is already an odd one


def credential_identity(kind: str, base_url: str, *secrets_and_names: str) -> str:
    """Who a credential is, for token caches, budgets and locks: a SHA-256 over the MLS host
    and every part of the credential, its secret included, so that no two credentials share
    one unless every part is the same. It never reveals the secret (logs and metrics may show
    budget keys made from it)."""
    host = urlsplit(base_url).netloc.lower()
    digest = hashlib.sha256("\0".join((kind, host, *secrets_and_names)).encode()).hexdigest()
    return f"{kind}:{digest[:32]}"


class Authenticator(Protocol):
    refreshable: bool

    @property
    def credential_id(self) -> str:
        """The credential's identity (`credential_identity`): never the secret itself."""
        ...

    async def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


@dataclass
class StaticBearer:
    value: str
    base_url: str = ""  # the MLS it is sent to: part of its identity
    refreshable: bool = False

    @property
    def credential_id(self) -> str:
        return credential_identity("token", self.base_url, self.value)

    async def token(self) -> str:
        return self.value

    def invalidate(self, token: str) -> None:
        """Nothing to refetch: a rejected static token is a rejected connection."""


@dataclass
class _Cached:
    token: str
    expires_at: float  # time.monotonic()


class TokenCache:
    """Access tokens by credential identity (`credential_identity`: secret included), shared
    by every connection of a process that holds the very same credential."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def get(self, key: str) -> str | None:
        cached = self._tokens.get(key)
        if cached is None or cached.expires_at - EXPIRY_MARGIN_SECONDS <= time.monotonic():
            return None
        return cached.token

    def put(self, key: str, token: str, expires_in: float) -> None:
        self._tokens[key] = _Cached(token, time.monotonic() + expires_in)

    def drop(self, key: str, token: str) -> None:
        cached = self._tokens.get(key)
        if cached is not None and cached.token == token:
            del self._tokens[key]


class OAuth2ClientCredentials:
    refreshable = True

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
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
        # The token cache's key, the budget's and the fetch lock's: the secret is part of it,
        # so a connection naming someone else's client id and token endpoint with another
        # secret makes its own token request (and is refused), never reusing theirs.
        self._key = credential_identity("client", base_url, token_url, client_id, client_secret)
        self.token_requests = 0

    @property
    def credential_id(self) -> str:
        return self._key

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
        answer = await request_token(self._http, self._token_url, form)
        return answer.access_token, answer.expires_in


@dataclass(frozen=True)
class TokenAnswer:
    """A token endpoint's answer (RFC 6749 5.1), checked: what every grant gets back."""

    access_token: str
    expires_in: float  # seconds, at most what the caller allows
    refresh_token: str | None = None  # rotated, when the server sends a new one


async def request_token(
    http: httpx.AsyncClient,
    url: str,
    form: dict[str, str],
    *,
    max_seconds: float = MAX_TOKEN_SECONDS,
) -> TokenAnswer:
    """POST one grant to a token endpoint and check its answer: the one place every MLS grant
    (client credentials, refresh token, password) is sent and parsed, so that a hostile or
    broken answer is a clear error, never a traceback holding the secret."""
    try:
        response = await http.post(url, data=form, headers={"Accept": "application/json"})
    except httpx.TimeoutException:
        raise MlsRequestError(NETWORK_TIMEOUT) from None
    except EgressRefused as exc:
        raise MlsRequestError(f"{EGRESS_REFUSED}: {exc}", retryable=False) from None
    except httpx.TransportError as exc:
        raise MlsRequestError(f"Network error: {type(exc).__name__}") from None
    # RFC 6749 5.2: invalid_client / invalid_grant / unauthorized_client come as 400 or 401.
    if response.status_code in (400, 401, 403):
        raise MlsAuthError(f"token endpoint HTTP {response.status_code}")
    if response.status_code >= 300:
        raise MlsRequestError(f"MLS token endpoint error: HTTP {response.status_code}")
    try:
        body = response.json()
        token = body["access_token"]
        expires_in = float(body.get("expires_in", 3600))
        refresh_token = body.get("refresh_token")
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError):
        # (a 400-digit expires_in overflowed float(); the traceback held the secret)
        raise MlsRequestError("Malformed MLS token response", retryable=False) from None
    if not _plausible_token(token) or not math.isfinite(expires_in) or expires_in <= 0:
        raise MlsRequestError("Malformed MLS token response", retryable=False)
    if refresh_token is not None and not _plausible_token(refresh_token):
        raise MlsRequestError("Malformed MLS token response", retryable=False)
    SECRETS.add(token)  # never in a log line (observability/redact.py)
    if refresh_token:
        SECRETS.add(refresh_token)
    # A token is used for `max_seconds` at most (a day, for a cached one), whatever its
    # answer says.
    return TokenAnswer(token, min(expires_in, max_seconds), refresh_token or None)


def _plausible_token(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TOKEN_LENGTH


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
