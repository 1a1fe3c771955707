"""Per-user API keys: shown once, stored only as a SHA-256 digest.

A key is 32 random bytes (url-safe base64) behind a recognisable prefix, so a leaked key is easy
to spot in logs and by secret scanners. The keys are random, not passwords: one fast hash is
enough (no salt or slow KDF needed), and it lets the database find the user by the digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import User

PREFIX = "mls_"


def generate() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue(user: User) -> str:
    """A new key for the user; the previous one stops working. Returns the plaintext key,
    which is never stored."""
    key = generate()
    user.api_key_hash = digest(key)
    return key


async def authenticate(session: UnitOfWork, key: str) -> User | None:
    """The key's user, or None. The lookup is by digest; the final comparison is constant
    time so that no timing difference says how much of a digest matched."""
    if not key.startswith(PREFIX):
        return None
    wanted = digest(key)
    user = await session.users.by_api_key_hash(wanted)
    if user is None or user.api_key_hash is None:
        return None
    return user if hmac.compare_digest(user.api_key_hash, wanted) else None
