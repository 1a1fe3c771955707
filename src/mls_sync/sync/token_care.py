"""Keep every platform token alive until the sale, or say days ahead that it will die.

A listing often sells months after its post went up, and by then a token left alone is long
dead: LinkedIn member tokens last 60 days, Instagram Login tokens 60 days and only while
extended, Google refresh tokens of apps in testing die after 7 days, X and Pinterest rotate
theirs. So after every run over every connection, each active platform connection not looked at
for `check_every` (a day by default) gets, by what its platform allows:

- a refresh token: refreshed when the access token runs out within `warn_within` (a refresh
  token that still works is proven, a dead one found while the user can still act);
- a token that extends itself (Instagram Login): extended within `warn_within`;
- a Page token that never expires (Facebook, Instagram with Facebook Login): one cheap read
  proves it still works; a lapsed permission flags the connection for reconnecting;
- none of these (LinkedIn without an approved refresh token, say): when it expires within
  `warn_within`, MlsSyncPlatformTokenExpiring fires once for that expiry and the dashboard's
  "needs re-authentication" list shows it with the date.

A refusal for a token already dead marks the connection `expired` (the dashboard shows it); a
platform that is only unreachable leaves the connection to be looked at again next run. Refreshed
tokens are stored in the transaction that holds the row lock, rotated refresh tokens included
(`platform_tokens.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from mls_sync.observability.alerts import PlatformAlert, token_expiring_alert
from mls_sync.observability.metrics import METRICS
from mls_sync.social.base import (
    ErrorKind,
    PlatformClient,
    PlatformError,
    Tokens,
    VerifiableClient,
)
from mls_sync.social.registry import client_for
from mls_sync.store.crypto import SecretDecryptError
from mls_sync.store.interface import Storage
from mls_sync.store.models import PlatformConnection
from mls_sync.sync.platform_tokens import PlatformTokens, ReauthNeeded

log = structlog.get_logger(__name__)

WARN_WITHIN = timedelta(days=7)
CHECK_EVERY = timedelta(hours=24)


def can_refresh(client: PlatformClient | None, *, has_refresh_token: bool) -> bool:
    """Whether the token care can renew this connection's token without the user: with a
    refresh token, or because the token extends itself (Instagram Login). `mls-sync doctor`
    warns about the others by the same rule."""
    return has_refresh_token or bool(getattr(client, "refreshes_with_access_token", False))


@dataclass(frozen=True)
class _Due:
    id: str
    user_id: str
    platform: str
    client: PlatformClient | None
    tokens: Tokens | None  # None when the stored tokens no longer decrypt
    warned: bool


class TokenCare:
    def __init__(
        self,
        db: Storage,
        tokens: PlatformTokens,
        clients: Mapping[str, PlatformClient],
        alerts: Callable[[PlatformAlert], Awaitable[None]],
        *,
        clock: Callable[[], datetime],
        warn_within: timedelta = WARN_WITHIN,
        check_every: timedelta = CHECK_EVERY,
    ) -> None:
        self._db = db
        self._tokens = tokens
        self._clients = clients
        self._alerts = alerts
        self._clock = clock
        self.warn_within = warn_within
        self.check_every = check_every

    async def run(self) -> int:
        """Look after every connection that is due; how many were refreshed or verified.
        Never raises: one connection's trouble is logged and retried next run."""
        try:
            due = await self._due()
        except Exception:
            log.exception("platform token care failed")
            return 0
        done = 0
        for connection in due:
            try:
                done += await self._care(connection)
            except Exception as exc:
                log.warning(
                    "platform token care failed",
                    platform=connection.platform,
                    platform_connection_id=connection.id,
                    error=type(exc).__name__,
                )
        return done

    async def _due(self) -> list[_Due]:
        async with self._db.transaction() as session:
            rows = await session.platforms.due_for_care(self._clock() - self.check_every)
            return [self._describe(row) for row in rows]

    def _describe(self, row: PlatformConnection) -> _Due:
        try:
            tokens: Tokens | None = self._tokens.decrypt(row)
        except SecretDecryptError:
            tokens = None
        client = client_for(self._clients, row.platform, row.login)
        warned = row.expiry_warned_at is not None
        return _Due(row.id, row.user_id, row.platform, client, tokens, warned)

    async def _care(self, due: _Due) -> int:
        """1 when the tokens were refreshed or verified, 0 otherwise."""
        client, tokens = due.client, due.tokens
        if client is None or tokens is None or not client.supports_delete:
            # Nothing to keep alive for (TikTok deletes nothing) or nothing we can read.
            await self._checked(due.id)
            return 0
        try:
            if self._refreshable(client, tokens):
                if not self._tokens.expiring(tokens, self.warn_within):
                    await self._checked(due.id)
                    return 0
                await self._tokens.refresh(
                    due.id, client, tokens, final=self._tokens.expired(tokens)
                )
                await self._checked(due.id)
                return 1
            if isinstance(client, VerifiableClient) and not self._tokens.expired(tokens):
                await client.verify_token(tokens.access_token)
                await self._warn_if_expiring(due, tokens)
                return 1
        except ReauthNeeded:
            return 0  # marked expired: the dashboard asks the user to reconnect
        except PlatformError as exc:
            return await self._refused(due, tokens, exc)
        await self._warn_if_expiring(due, tokens)
        return 0

    def _refreshable(self, client: PlatformClient, tokens: Tokens) -> bool:
        if tokens.expires_at is None:
            return False  # nothing runs out, so nothing to refresh ahead of
        return can_refresh(client, has_refresh_token=bool(tokens.refresh_token))

    async def _refused(self, due: _Due, tokens: Tokens, error: PlatformError) -> int:
        if error.kind in (ErrorKind.RECONNECT, ErrorKind.AUTH) and (
            error.kind is ErrorKind.RECONNECT or self._tokens.expired(tokens)
        ):
            await self._tokens.mark_expired(due.id, error.message)
            log.warning(
                "platform token no longer works, re-authentication needed",
                platform=due.platform,
                platform_connection_id=due.id,
                error=error.message,
            )
            return 0
        if error.kind is ErrorKind.AUTH:
            # Refused ahead of time while the token still works: it will die on its date.
            log.warning(
                "platform token keep-alive failed",
                platform=due.platform,
                platform_connection_id=due.id,
                error=type(error).__name__,
            )
            await self._warn_if_expiring(due, tokens)
            return 0
        # Unreachable, throttled or a retired API version: look again next run.
        log.info(
            "platform token care postponed",
            platform=due.platform,
            platform_connection_id=due.id,
            error=error.message,
        )
        return 0

    async def _warn_if_expiring(self, due: _Due, tokens: Tokens) -> None:
        expires_at = tokens.expires_at
        warn = (
            expires_at is not None
            and not due.warned
            and self._tokens.expiring(tokens, self.warn_within)
        )
        await self._checked(due.id, warned=warn)
        if warn and expires_at is not None:
            METRICS.platform_token_expiring(due.platform)
            await self._alerts(
                token_expiring_alert(
                    due.platform,
                    connection_id=due.id,
                    user_id=due.user_id,
                    expires_at=expires_at,
                )
            )

    async def _checked(self, connection_id: str, *, warned: bool = False) -> None:
        async with self._db.transaction() as session:
            row = await session.get(PlatformConnection, connection_id)
            if row is not None:
                now = self._clock()
                row.tokens_checked_at = now
                if warned:
                    row.expiry_warned_at = now
