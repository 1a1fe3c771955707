"""Dashboard sign-in: a signed cookie naming the user, and a CSRF token per sign-in.

The cookie is signed, not encrypted (itsdangerous): it holds no secret, only the user's id, a
CSRF token the page repeats in every form, when it was signed, and a check value tied to the
user's current API key, so issuing a new key (`mls-sync users key`) ends every dashboard
sign-in made with the old one. Signing out records the instant on the user, which ends every
sign-in signed before it, in every browser (a copied cookie too). It is HttpOnly (scripts
cannot read the CSRF token from it) and SameSite=Lax (other sites' forms do not carry it); its
signature's age bounds the sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from mls_sync.config import Settings
from mls_sync.services.keys import derived_secret

SESSION_COOKIE = "mls_sync_session"
FLASH_COOKIE = "mls_sync_flash"
FLASH_SECONDS = 120  # a flash lives only across the redirect that follows a form
_DERIVE_LABEL = b"mls-sync/dashboard-session/v1"


@dataclass(frozen=True)
class WebSession:
    user_id: str
    key_check: str
    csrf: str
    signed_at: float  # seconds since the epoch


@dataclass(frozen=True)
class Flash:
    ok: bool
    text: str


class SessionCodec:
    """Writes and reads the dashboard's cookies with one secret."""

    def __init__(
        self,
        secret: bytes,
        *,
        max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._clock = clock
        self._max_age = max(1, int(max_age_seconds))
        self._sessions = URLSafeTimedSerializer(secret, salt="mls-sync.dashboard.session")
        self._flashes = URLSafeTimedSerializer(secret, salt="mls-sync.dashboard.flash")

    @property
    def max_age_seconds(self) -> int:
        return self._max_age

    def key_check(self, api_key_hash: str | None) -> str:
        """A value that changes when the user's key does; reveals nothing about the key."""
        message = (api_key_hash or "").encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def open(self, user_id: str, api_key_hash: str | None) -> tuple[WebSession, str]:
        """A new sign-in and its cookie value."""
        session = WebSession(
            user_id, self.key_check(api_key_hash), secrets.token_urlsafe(32), self._clock()
        )
        fields = {"u": user_id, "k": session.key_check, "c": session.csrf, "t": session.signed_at}
        value = self._sessions.dumps(fields)
        return session, value

    def read(self, cookie: str | None) -> WebSession | None:
        """The sign-in the cookie holds, or None when it is missing, forged or too old."""
        data = self._load(self._sessions, cookie, self._max_age)
        if data is None:
            return None
        user_id, key_hash, csrf, signed_at = (data.get(k) for k in ("u", "k", "c", "t"))
        if not (isinstance(user_id, str) and isinstance(key_hash, str) and isinstance(csrf, str)):
            return None
        if not (isinstance(signed_at, int | float) and math.isfinite(signed_at)):
            return None  # also every cookie signed before sign-outs were recorded
        if not (user_id and key_hash and csrf):
            return None
        return WebSession(user_id, key_hash, csrf, signed_at)

    def still_valid(
        self, session: WebSession, api_key_hash: str | None, ended_at: datetime | None
    ) -> bool:
        """False once the user's API key has been replaced (or revoked), and for a sign-in
        signed before the user last signed out (`ended_at`)."""
        if ended_at is not None and session.signed_at <= ended_at.timestamp():
            return False
        return api_key_hash is not None and hmac.compare_digest(
            session.key_check, self.key_check(api_key_hash)
        )

    def flash(self, flash: Flash) -> str:
        return self._flashes.dumps({"ok": flash.ok, "text": flash.text})

    def read_flash(self, cookie: str | None) -> Flash | None:
        data = self._load(self._flashes, cookie, FLASH_SECONDS)
        if data is None or not isinstance(data.get("text"), str):
            return None
        return Flash(ok=bool(data.get("ok")), text=data["text"])

    @staticmethod
    def _load(
        serializer: URLSafeTimedSerializer, cookie: str | None, max_age: int
    ) -> dict[str, Any] | None:
        if not cookie:
            return None
        try:
            data = serializer.loads(cookie, max_age=max_age)
        except BadSignature:  # also SignatureExpired
            return None
        return data if isinstance(data, dict) else None


def csrf_matches(session: WebSession, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())


def session_secret(settings: Settings) -> bytes:
    """The configured secret, or one derived from the first token key: already a required
    secret in production, so the dashboard needs no setting of its own."""
    if settings.dashboard_session_secret is not None:
        return settings.dashboard_session_secret.get_secret_value().encode()
    return derived_secret(settings, _DERIVE_LABEL)


def codec_for(settings: Settings) -> SessionCodec:
    return SessionCodec(
        session_secret(settings), max_age_seconds=settings.dashboard_session_hours * 3600
    )
