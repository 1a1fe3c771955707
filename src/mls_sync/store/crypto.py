"""Token encryption at rest (Fernet; MultiFernet so keys can rotate).

The first key encrypts; every key decrypts, so a new key can be put in front and old
ciphertexts stay readable until they are re-encrypted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mls_sync.config import Settings
from mls_sync.store.private_files import create_owner_only

log = structlog.get_logger(__name__)

DEV_KEY_FILE = "token.key"


class SecretDecryptError(RuntimeError):
    """A stored secret could not be decrypted with any configured key."""


class TokenCipher:
    def __init__(self, keys: list[str]) -> None:
        # Told every plaintext the cipher handles: the composition root hands them to the
        # log redaction (observability/redact.py), so no stored secret can reach a log line.
        self.seen: Callable[[str], None] = lambda _plaintext: None
        if not keys:
            raise ValueError("at least one token key is needed")
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "MLS_SYNC_TOKEN_KEYS holds a key that is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        self.seen(plaintext)
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            plaintext = self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretDecryptError(
                "a stored secret cannot be decrypted with the configured token keys"
            ) from exc
        self.seen(plaintext)
        return plaintext

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt with the first (newest) key."""
        try:
            return self._fernet.rotate(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise SecretDecryptError(
                "a stored secret cannot be decrypted with the configured token keys"
            ) from exc

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()


def cipher_from_settings(settings: Settings) -> TokenCipher:
    if settings.token_keys is not None:
        keys = [k for k in settings.token_keys.get_secret_value().split(",") if k.strip()]
        return TokenCipher(keys)
    return TokenCipher([_dev_key(settings.data_dir)])


def _dev_key(data_dir: Path) -> str:
    path = data_dir / DEV_KEY_FILE
    key = TokenCipher.generate_key()
    if not create_owner_only(path, (key + "\n").encode()):
        return path.read_text().strip()
    log.warning(
        "generated a development token key; set MLS_SYNC_TOKEN_KEYS in production",
        path=str(path),
    )
    return key
