"""Where an MLS login that renews (mls/logins.py) keeps its state: the feed's encrypted
credentials, renewed under a lease so that one worker renews a login at a time.

The lease is the one table every backend has for "one holder at a time" (store/leases): its
key is a digest of the feed id, never the id itself, so a login's lease can never be mistaken
for the feed's own run lease. A worker that finds it taken waits for the holder's renewal
(a token request: seconds) and then reads what the holder saved.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from mls_sync.mls.auth import encode_credentials, parse_credentials
from mls_sync.mls.errors import MlsRequestError
from mls_sync.mls.logins import login_id_of
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.interface import Storage
from mls_sync.store.models import MlsFeed
from mls_sync.store.types import utcnow

LOGIN_BUSY = "MLS login is being renewed by another worker; retried next run"
# Longer than a token request may take (the MLS client's whole-request timeout is shorter):
# a holder that died mid-renewal frees the login after this.
LEASE_TTL = timedelta(seconds=60)
POLL_SECONDS = 0.1


def login_lease_key(feed_id: str) -> str:
    return hashlib.sha256(f"mls-login\0{feed_id}".encode()).hexdigest()[:32]


class FeedLoginStore:
    def __init__(
        self,
        db: Storage,
        cipher: TokenCipher,
        feed_id: str,
        *,
        wait_seconds: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._feed_id = feed_id
        self._wait = wait_seconds
        self._clock = clock
        self._holder = f"login:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    async def load(self) -> dict[str, Any] | None:
        async with self._db.transaction() as session:
            feed = await session.get(MlsFeed, self._feed_id)
            if feed is None:
                return None
            plaintext = self._cipher.decrypt(feed.credentials_encrypted)
            return parse_credentials(plaintext, feed.auth_kind)

    async def save(self, credentials: dict[str, Any]) -> None:
        async with self._db.transaction() as session:
            feed = await session.get(MlsFeed, self._feed_id)
            if feed is None:
                return
            current = parse_credentials(
                self._cipher.decrypt(feed.credentials_encrypted), feed.auth_kind
            )
            if login_id_of(current) != login_id_of(credentials):
                return  # the user signed in again meanwhile: theirs wins
            feed.credentials_encrypted = self._cipher.encrypt(encode_credentials(credentials))

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        key = login_lease_key(self._feed_id)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._wait
        while not await self._take(key):
            if loop.time() >= give_up:
                raise MlsRequestError(LOGIN_BUSY)
            await asyncio.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            async with self._db.transaction() as session:
                await session.leases.release(key, self._holder)

    async def _take(self, key: str) -> bool:
        async with self._db.transaction() as session:
            return await session.leases.take(key, self._holder, now=self._clock(), ttl=LEASE_TTL)


def feed_login_stores(db: Storage, cipher: TokenCipher) -> Callable[[MlsFeed], FeedLoginStore]:
    """For ClientFactory: each feed's login kept in its own row (a doctor probe that renews a
    login saves it too, or the rotated refresh token would be lost)."""
    return lambda feed: FeedLoginStore(db, cipher, feed.id)
