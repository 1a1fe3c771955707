"""The sandbox MLS's OAuth2 token endpoint, refusing what a real one refuses.

Grants (RFC 6749): client credentials (4.4), the password grant for members (4.3: Rapattoni's
member MLS id and password) and the refresh-token grant (6: Spark's OpenID Connect logins).
Refresh tokens rotate: each renewal answers a new one and the old one is refused from then on
(`invalid_grant`), as servers that rotate do; a refresh token used twice is the sign of two
renewers racing, which the service must never do, and `reuse_refused` counts those.

Tokens expire after `lifetime` seconds and refresh tokens after `refresh_lifetime`, on
`clock` (a test may move it months ahead). `expire_all()` expires every access token now, as
when the MLS rotates keys; `reject_client()` makes a client's secret stop working;
`revoke_logins()` refuses every refresh token (the user changed their password).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse


@dataclass
class _Refresh:
    username: str | None
    expires_at: float
    used: bool = False


class TokenIssuer:
    def __init__(
        self,
        *,
        lifetime: float = 3600.0,
        refresh_lifetime: float = 30 * 86400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = lifetime
        self.refresh_lifetime = refresh_lifetime
        self.clock = clock
        self.issued = 0
        self.grants: list[str] = []  # the grant type of each token request, in order
        self.reuse_refused = 0
        self._clients: dict[str, str] = {}
        self._public_clients: set[str] = set()  # may renew without a secret (a public client)
        self._members: dict[str, str] = {}
        self._tokens: dict[str, float] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._lock = threading.Lock()

    def add_client(self, client_id: str, client_secret: str | None = None) -> None:
        with self._lock:
            if client_secret is None:
                self._public_clients.add(client_id)
            else:
                self._clients[client_id] = client_secret

    def reject_client(self, client_id: str) -> None:
        with self._lock:
            self._clients.pop(client_id, None)
            self._public_clients.discard(client_id)

    def add_member(self, username: str, password: str) -> None:
        """A member who signs in with the password grant."""
        with self._lock:
            self._members[username] = password

    def sign_in(self, username: str | None = None) -> tuple[str, str]:
        """What a user's interactive sign-in (the authorization code flow, not served here)
        ends with: an access token and a refresh token."""
        with self._lock:
            return self._issue(username, with_refresh=True)

    def revoke_logins(self) -> None:
        with self._lock:
            self._refresh.clear()

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()

    def valid(self, token: str | None) -> bool:
        with self._lock:
            expires = self._tokens.get(token or "")
            return expires is not None and expires > self.clock()

    def live_refresh_tokens(self) -> int:
        with self._lock:
            now = self.clock()
            return sum(1 for r in self._refresh.values() if not r.used and r.expires_at > now)

    async def endpoint(self, request: Request) -> JSONResponse:
        # application/x-www-form-urlencoded, parsed by hand (no multipart dependency needed).
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        grant = form.get("grant_type", "")
        with self._lock:
            self.grants.append(grant)
            if grant not in ("client_credentials", "password", "refresh_token"):
                return _error(HTTPStatus.BAD_REQUEST, "unsupported_grant_type")
            if not self._client_ok(form, secret_required=grant == "client_credentials"):
                return _error(HTTPStatus.UNAUTHORIZED, "invalid_client")
            if grant == "client_credentials":
                token, _ = self._issue(None, with_refresh=False)
                return _answer(token, None, self.lifetime)
            if grant == "password":
                username, password = form.get("username", ""), form.get("password", "")
                known = self._members.get(username)
                if known is None or not secrets.compare_digest(known, password):
                    return _error(HTTPStatus.BAD_REQUEST, "invalid_grant")
                token, refresh = self._issue(username, with_refresh=True)
                return _answer(token, refresh, self.lifetime)
            old = self._refresh.get(form.get("refresh_token", ""))
            if old is None or old.expires_at <= self.clock():
                return _error(HTTPStatus.BAD_REQUEST, "invalid_grant")
            if old.used:
                self.reuse_refused += 1
                return _error(HTTPStatus.BAD_REQUEST, "invalid_grant")
            old.used = True  # rotated: the old one is spent
            token, refresh = self._issue(old.username, with_refresh=True)
            return _answer(token, refresh, self.lifetime)

    def _client_ok(self, form: dict[str, str], *, secret_required: bool) -> bool:
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if client_id in self._public_clients and not secret_required:
            return True
        known = self._clients.get(client_id)
        return known is not None and secrets.compare_digest(known, secret or "")

    def _issue(self, username: str | None, *, with_refresh: bool) -> tuple[str, str]:
        token = secrets.token_urlsafe(24)
        now = self.clock()
        self._tokens[token] = now + self.lifetime
        self.issued += 1
        refresh = ""
        if with_refresh:
            refresh = secrets.token_urlsafe(32)
            self._refresh[refresh] = _Refresh(username, now + self.refresh_lifetime)
        return token, refresh


def _answer(token: str, refresh: str | None, lifetime: float) -> JSONResponse:
    body: dict[str, object] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(lifetime),
    }
    if refresh:
        body["refresh_token"] = refresh
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _error(status: int, code: str) -> JSONResponse:
    return JSONResponse({"error": code}, status_code=status)
