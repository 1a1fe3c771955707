"""The token encryption keys (MLS_SYNC_TOKEN_KEYS): a new one, a rotation of every stored
secret to the newest, and secrets derived from the first key for other purposes."""

from __future__ import annotations

import hashlib
import hmac

from mls_sync.config import Settings
from mls_sync.domain.errors import Conflict
from mls_sync.store.crypto import (
    DEV_KEY_FILE,
    SecretDecryptError,
    TokenCipher,
    cipher_from_settings,
)
from mls_sync.store.interface import Storage
from mls_sync.store.key_rotation import RotationReport, rotate_keys

__all__ = ["RotationReport", "derived_secret", "new_key", "rotate"]


def new_key() -> str:
    """A new Fernet key, to put first in MLS_SYNC_TOKEN_KEYS."""
    return TokenCipher.generate_key()


async def rotate(db: Storage, cipher: TokenCipher) -> RotationReport:
    """Re-encrypt every stored secret with the first key; a secret no key opens changes
    nothing (`Conflict`: what is stored clashes with the keys; an old key went too early)."""
    try:
        return await rotate_keys(db, cipher)
    except SecretDecryptError as exc:
        raise Conflict(
            f"Nothing rotated: {exc} (keep every old key in MLS_SYNC_TOKEN_KEYS until rotated)"
        ) from None


def derived_secret(settings: Settings, label: bytes) -> bytes:
    """A secret for `label` from the first token key: already a required secret in
    production, so what derives from it needs no setting of its own."""
    if settings.token_keys is not None:
        keys = [k.strip() for k in settings.token_keys.get_secret_value().split(",")]
        first = next(k for k in keys if k)
    else:
        cipher_from_settings(settings)  # creates the development key when there is none yet
        first = (settings.data_dir / DEV_KEY_FILE).read_text().strip()
    return hmac.new(first.encode(), label, hashlib.sha256).digest()
