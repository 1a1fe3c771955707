"""The sandbox MLS's OAuth2 token endpoint (client credentials, RFC 6749 4.4).

Tokens expire after `lifetime` seconds; `expire_all()` lets a test expire every token now, as
when the MLS rotates keys, and `reject_client()` makes a client's secret stop working.
"""

from __future__ import annotations

import secrets
import threading
import time
from http import HTTPStatus
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse


class TokenIssuer:
    def __init__(self, *, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self.issued = 0
        self._clients: dict[str, str] = {}
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def add_client(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            self._clients[client_id] = client_secret

    def reject_client(self, client_id: str) -> None:
        with self._lock:
            self._clients.pop(client_id, None)

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()

    def valid(self, token: str | None) -> bool:
        with self._lock:
            expires = self._tokens.get(token or "")
            return expires is not None and expires > time.monotonic()

    async def endpoint(self, request: Request) -> JSONResponse:
        # application/x-www-form-urlencoded, parsed by hand (no multipart dependency needed).
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if form.get("grant_type") != "client_credentials":
            return _error(HTTPStatus.BAD_REQUEST, "unsupported_grant_type")
        with self._lock:
            known = self._clients.get(client_id)
            if known is None or not secrets.compare_digest(known, secret):
                return _error(HTTPStatus.UNAUTHORIZED, "invalid_client")
            token = secrets.token_urlsafe(24)
            self._tokens[token] = time.monotonic() + self.lifetime
            self.issued += 1
        body = {"access_token": token, "token_type": "Bearer", "expires_in": int(self.lifetime)}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _error(status: int, code: str) -> JSONResponse:
    return JSONResponse({"error": code}, status_code=status)
