"""Platform tokens as the outbox and the token care use them: decrypted, and refreshed safely.

Refreshes of one platform connection are serialised by an asyncio lock per connection id (this
process) and by locking the connection's row (`SELECT ... FOR UPDATE`) in the transaction that
stores the new tokens (other processes, on PostgreSQL): whoever comes second finds the tokens
replaced and uses them, so a single-use refresh token (X, Pinterest, TikTok) is never spent
twice, and a rotated refresh token is stored in the same transaction as the answer that
brought it, before anyone uses the new access token.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from mls_sync.domain.status import ConnectionState
from mls_sync.social.base import ErrorKind, PlatformClient, PlatformError, Tokens
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.interface import Storage
from mls_sync.store.models import PlatformConnection

log = structlog.get_logger(__name__)

# Refresh this long before the stored expiry: clocks drift and requests take time.
REFRESH_AHEAD = timedelta(minutes=2)


class ReauthNeeded(Exception):
    """A refresh was refused and the connection is now marked expired."""


class PlatformTokens:
    def __init__(self, db: Storage, cipher: TokenCipher, *, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._cipher = cipher
        self._clock = clock
        # One lock per platform connection, shared by every drain of this process; each lives
        # while anyone holds or waits on it.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def decrypt(self, stored: PlatformConnection) -> Tokens:
        refresh = stored.refresh_token_encrypted
        return Tokens(
            access_token=self._cipher.decrypt(stored.access_token_encrypted),
            refresh_token=self._cipher.decrypt(refresh) if refresh else None,
            expires_at=stored.expires_at,
        )

    def expiring(self, tokens: Tokens, within: timedelta = REFRESH_AHEAD) -> bool:
        return tokens.expires_at is not None and tokens.expires_at <= self._clock() + within

    def expired(self, tokens: Tokens) -> bool:
        return tokens.expires_at is not None and tokens.expires_at <= self._clock()

    async def refresh(
        self, connection_id: str, client: PlatformClient, used: Tokens, *, final: bool
    ) -> Tokens:
        """New tokens for the connection, stored encrypted before anyone uses them.

        `final`: a refused refresh means the user must reconnect (the token in hand is dead), so
        the connection is marked expired in the same transaction and `ReauthNeeded` raised.
        Otherwise the refusal is raised as the client's PlatformError.
        """
        lock = self._locks.get(connection_id)
        if lock is None:
            lock = self._locks[connection_id] = asyncio.Lock()
        async with lock:
            failure: PlatformError | None = None
            fresh: Tokens | None = None
            async with self._db.transaction() as session:
                row = await session.platforms.lock(connection_id)
                if row is None or row.state != ConnectionState.ACTIVE:
                    # Expired (or removed) by whoever refreshed before us.
                    reason = row.state_message if row is not None else "connection removed"
                    raise ReauthNeeded(reason or "refresh refused")
                current = self.decrypt(row)
                if current.access_token != used.access_token and not self.expiring(current):
                    return current  # refreshed while we waited for the lock
                try:
                    fresh = await client.refresh_token(current)
                except PlatformError as exc:
                    failure = exc
                    if exc.kind is ErrorKind.AUTH and final:
                        row.state = ConnectionState.EXPIRED
                        row.state_message = exc.message
                else:
                    # Same transaction as the row lock: a rotated refresh token is never lost
                    # to a second refresh, and is stored before the new access token is used.
                    repo.store_platform_tokens(
                        row,
                        self._cipher,
                        access_token=fresh.access_token,
                        refresh_token=fresh.refresh_token,
                        expires_at=fresh.expires_at,
                    )
            if failure is not None:
                if failure.kind is ErrorKind.AUTH and final:
                    raise ReauthNeeded(failure.message) from failure
                raise failure
            assert fresh is not None
            log.info(
                "platform token refreshed",
                platform=str(client.platform),
                platform_connection_id=connection_id,
                rotated=fresh.refresh_token != current.refresh_token,
            )
            return fresh

    async def mark_expired(self, connection_id: str, reason: str) -> None:
        """The user must reconnect: the connection's posts stay published until they do."""
        async with self._db.transaction() as session:
            stored = await session.get(PlatformConnection, connection_id)
            if stored is not None:
                stored.state = ConnectionState.EXPIRED
                stored.state_message = reason
