"""Drain the unpublish outbox: take sold listings' posts down on their platforms.

Jobs were written in the same transaction as the status change that called for them, so a crash
never loses one. A drain first claims each due job by moving its next attempt forward (a lease)
in a conditional UPDATE, so two drains running at once never both call the platform for one
post; a crash after the claim leaves the job to a later run once the lease runs out. Each job's
outcome is committed on its own: a post is marked `unpublished` and its job removed together,
after the platform confirmed the delete (or said the post is already gone), so a job is never
repeated once it is done; a crash between the platform's answer and our commit repeats the call,
and the platform answers "already gone".

Tokens: a token the stored expiry says is (about to be) expired is refreshed before the delete;
a token the platform rejects is refreshed once and the delete tried once more. Refreshes of one
platform connection are serialised by an asyncio lock per connection id (this process) and by
locking the connection's row (`SELECT ... FOR UPDATE`) in the transaction that stores the new
tokens (other processes, on PostgreSQL): whoever comes second finds the tokens replaced and uses
them, so a single-use refresh token (X, Pinterest, TikTok) is never spent twice. A refresh the
platform refuses marks the connection `expired`; its posts stay `published` until the user
reconnects.

Rate limits defer the job to the time the platform names without counting an attempt, and the
rest of that connection's jobs in the same drain wait too instead of knocking again.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import ConnectionState, PostStatus
from mls_sync.observability.metrics import METRICS
from mls_sync.social.base import (
    DeleteOutcome,
    ErrorKind,
    PlatformClient,
    PlatformError,
    Tokens,
    label,
)
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.models import Listing, PlatformConnection, Post, UnpublishJob
from mls_sync.store.types import utcnow

log = structlog.get_logger(__name__)
Logger = structlog.typing.FilteringBoundLogger

MAX_BACKOFF = timedelta(hours=6)
# Longer than a delete plus a refresh plus a retry can take with the HTTP timeouts we use.
DEFAULT_LEASE = timedelta(minutes=5)
# Refresh this long before the stored expiry: clocks drift and requests take time.
REFRESH_AHEAD = timedelta(minutes=2)
# Tokens without a refresh token are extended this long before they run out (Instagram's last
# 60 days and can be extended once a day old; a week leaves room for a week of failures).
KEEP_ALIVE_WINDOW = timedelta(days=7)
# A delete is idempotent (a post already gone counts as done), so a passing failure (5xx,
# network error, timeout, a rate limit that lifts within seconds) is tried again at once rather
# than a run later: a platform failing one request in ten would otherwise keep a sold
# listing's post up for several runs. Longer rate limits defer the job as before.
DELETE_TRIES = 3
DELETE_RETRY_BACKOFF = 0.25  # seconds before the second try; doubles, with full jitter
DELETE_RETRY_MAX_WAIT = 5.0


def no_connection_warning(platform: str) -> str:
    return f"No {platform} connection found for unpublishing post"


def reauthenticate_message(platform: str, reason: str | None = None) -> str:
    text = f"{label(platform)} connection expired. Please re-authenticate."
    return f"{text} ({reason})" if reason else text


def describe(platform: str, message: str) -> str:
    """A message that names its platform once: client messages mostly do already."""
    name = label(platform)
    return message if message.startswith(name) else f"{name}: {message}"


@dataclass
class DrainReport:
    unpublished_by_listing: Counter[str] = field(default_factory=Counter)
    # (listing_id, mls_number, message) for failures a person should see
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    deferred: int = 0

    @property
    def unpublished(self) -> int:
        return sum(self.unpublished_by_listing.values())


@dataclass(frozen=True)
class _Attempt:
    job_id: str
    post_id: str
    platform: str
    platform_post_id: str
    listing_id: str
    mls_number: str
    user_id: str
    attempts: int
    connection_id: str  # the listing's MLS connection, for the log


@dataclass(frozen=True)
class _Connection:
    """The platform connection as one attempt found it, tokens decrypted (memory only)."""

    id: str
    tokens: Tokens


class _ReauthNeeded(Exception):
    """A refresh was refused and the connection is now marked expired."""


@dataclass
class _Drain:
    report: DrainReport = field(default_factory=DrainReport)
    # platform connection id -> (throttled until, the platform's message)
    throttled: dict[str, tuple[datetime, str]] = field(default_factory=dict)


class Unpublisher:
    def __init__(
        self,
        db: Database,
        cipher: TokenCipher,
        clients: Mapping[str, PlatformClient],
        *,
        backoff_seconds: float = 60.0,
        per_platform_concurrency: int = 4,
        lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._clients = clients
        self._backoff = timedelta(seconds=backoff_seconds)
        self._per_platform = per_platform_concurrency
        self._lease = lease
        self._clock = clock
        # One lock per platform connection and one cap per platform, shared by every drain of
        # this process (a user-wide sync drains several MLS connections at once); each lives
        # while anyone holds or waits on it.
        self._refresh_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._caps: weakref.WeakValueDictionary[str, asyncio.Semaphore] = (
            weakref.WeakValueDictionary()
        )

    async def drain(self, *, listing_ids: Collection[str] | None = None) -> DrainReport:
        """Attempt every due job (of these listings, or all); returns what happened."""
        async with self._db.transaction() as session:
            rows = await repo.due_unpublish_jobs(
                session, now=self._clock(), listing_ids=listing_ids
            )
            attempts = [_attempt(job, post, listing) for job, post, listing in rows]
        drain = _Drain()

        async def run(attempt: _Attempt) -> None:
            # Platforms run side by side; each one sees at most `per_platform` deletes at once.
            cap = self._caps.get(attempt.platform)
            if cap is None:
                cap = self._caps[attempt.platform] = asyncio.Semaphore(self._per_platform)
            async with cap:
                try:
                    await self._attempt(attempt, drain)
                except Exception as exc:  # one post's failure never stops the others
                    log.exception("unpublish attempt failed", post_id=attempt.post_id)
                    drain.report.errors.append(
                        (
                            attempt.listing_id,
                            attempt.mls_number,
                            f"Internal error: {type(exc).__name__}",
                        )
                    )

        await asyncio.gather(*(run(a) for a in attempts))
        return drain.report

    # one job

    async def _attempt(self, attempt: _Attempt, drain: _Drain) -> None:
        bound = log.bind(
            connection_id=attempt.connection_id,
            listing_id=attempt.listing_id,
            mls_number=attempt.mls_number,
            platform=attempt.platform,
            post_id=attempt.post_id,
        )
        now = self._clock()
        async with self._db.transaction() as session:
            if not await repo.claim_unpublish_job(
                session, attempt.job_id, now=now, until=now + self._lease
            ):
                return  # another drain took it first
            post = await session.get(Post, attempt.post_id)
            if post is None or post.status != PostStatus.PUBLISHED:
                await _delete_job(session, attempt.job_id)  # nothing left to take down
                return
            stored = await repo.platform_connection(session, attempt.user_id, attempt.platform)
            client = self._clients.get(attempt.platform)
            problem, connection = self._usable(attempt.platform, stored, client)
        if problem is not None or connection is None or client is None:
            # The post stays published; the job waits for the user to (re)connect the platform.
            bound.warning(problem)
            await self._defer(attempt, problem or "", count_attempt=True)
            drain.report.deferred += 1
            return

        throttle = drain.throttled.get(connection.id)
        if throttle is not None and throttle[0] > now:
            # The platform already said "wait" to this connection in this drain.
            await self._defer(attempt, throttle[1], count_attempt=False, wait=throttle[0] - now)
            drain.report.deferred += 1
            return

        try:
            outcome = await self._delete(attempt, client, connection)
        except _ReauthNeeded as exc:
            message = reauthenticate_message(attempt.platform, str(exc))
            await self._defer(attempt, message, count_attempt=True)
            drain.report.errors.append((attempt.listing_id, attempt.mls_number, message))
            bound.error("platform token refresh refused, re-authentication needed", error=message)
            return
        except PlatformError as exc:
            await self._failed(attempt, connection.id, exc, drain, bound)
            return

        await self._mark_unpublished(attempt)
        drain.report.unpublished_by_listing[attempt.listing_id] += 1
        METRICS.post_unpublished(attempt.platform)
        bound.info("post unpublished", outcome=str(outcome))

    def _usable(
        self, platform: str, stored: PlatformConnection | None, client: PlatformClient | None
    ) -> tuple[str | None, _Connection | None]:
        """Why this post cannot be attempted now, or the connection to attempt it with."""
        if stored is None:
            return no_connection_warning(platform), None
        if stored.state != ConnectionState.ACTIVE:
            return reauthenticate_message(platform, stored.state_message), None
        if client is None:
            return f"Unpublishing on {label(platform)} is not supported yet", None
        try:
            return None, _Connection(stored.id, self._tokens(stored))
        except SecretDecryptError as exc:
            return str(exc), None

    def _tokens(self, stored: PlatformConnection) -> Tokens:
        refresh = stored.refresh_token_encrypted
        return Tokens(
            access_token=self._cipher.decrypt(stored.access_token_encrypted),
            refresh_token=self._cipher.decrypt(refresh) if refresh else None,
            expires_at=stored.expires_at,
        )

    async def _delete(
        self, attempt: _Attempt, client: PlatformClient, connection: _Connection
    ) -> DeleteOutcome:
        """Delete with a fresh enough token; on a rejected token, refresh once and retry once."""
        tokens = connection.tokens
        refreshed = False
        if client.supports_delete and self._expiring(tokens):
            try:
                tokens = await self._refresh(
                    connection.id, client, tokens, final=self._expired(tokens)
                )
                refreshed = True
            except PlatformError:
                if self._expired(tokens):
                    raise
                # Refused or unreachable ahead of time, but the token has not run out yet: use
                # it while it lasts.
        try:
            return await _delete_retrying(client, attempt.platform_post_id, tokens.access_token)
        except PlatformError as exc:
            if exc.kind is not ErrorKind.AUTH or refreshed or not client.supports_delete:
                raise
        tokens = await self._refresh(connection.id, client, tokens, final=True)
        return await _delete_retrying(client, attempt.platform_post_id, tokens.access_token)

    async def keep_tokens_alive(self, within: timedelta = KEEP_ALIVE_WINDOW) -> int:
        """Refresh the tokens that only a refresh with themselves can extend (Instagram's
        60-day tokens: no refresh token, and no refresh once expired) when they run out within
        `within`, although no post needs deleting: a user who sells nothing for two months
        must not have to reconnect. Returns how many were refreshed; never raises."""
        async with self._db.transaction() as session:
            expiring = await repo.platform_connections_expiring(session, self._clock() + within)
            candidates = [
                (row.id, row.platform, self._tokens(row))
                for row in expiring
                if getattr(self._clients.get(row.platform), "refreshes_with_access_token", False)
            ]
        refreshed = 0
        for connection_id, platform, tokens in candidates:
            try:
                await self._refresh(connection_id, self._clients[platform], tokens, final=False)
                refreshed += 1
            except Exception as exc:  # tried again by the next run, while the token lasts
                log.warning(
                    "platform token keep-alive failed",
                    platform=platform,
                    platform_connection_id=connection_id,
                    error=type(exc).__name__,
                )
        return refreshed

    def _expiring(self, tokens: Tokens) -> bool:
        return tokens.expires_at is not None and tokens.expires_at <= self._clock() + REFRESH_AHEAD

    def _expired(self, tokens: Tokens) -> bool:
        return tokens.expires_at is not None and tokens.expires_at <= self._clock()

    async def _refresh(
        self, connection_id: str, client: PlatformClient, used: Tokens, *, final: bool
    ) -> Tokens:
        """New tokens for the connection, stored encrypted before anyone uses them.

        `final`: a refused refresh means the user must reconnect (the token in hand is dead), so
        the connection is marked expired in the same transaction and `_ReauthNeeded` raised.
        Otherwise the refusal is raised as the client's PlatformError.
        """
        lock = self._refresh_locks.get(connection_id)
        if lock is None:
            lock = self._refresh_locks[connection_id] = asyncio.Lock()
        async with lock:
            failure: PlatformError | None = None
            fresh: Tokens | None = None
            async with self._db.transaction() as session:
                row = await repo.lock_platform_connection(session, connection_id)
                if row is None or row.state != ConnectionState.ACTIVE:
                    # Expired (or removed) by whoever refreshed before us.
                    reason = row.state_message if row is not None else "connection removed"
                    raise _ReauthNeeded(reason or "refresh refused")
                current = self._tokens(row)
                if current.access_token != used.access_token and not self._expiring(current):
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
                    raise _ReauthNeeded(failure.message) from failure
                raise failure
            assert fresh is not None
            log.info(
                "platform token refreshed",
                platform=str(client.platform),
                platform_connection_id=connection_id,
                rotated=fresh.refresh_token != current.refresh_token,
            )
            return fresh

    # outcomes

    async def _failed(
        self,
        attempt: _Attempt,
        connection_id: str,
        error: PlatformError,
        drain: _Drain,
        bound: Logger,
    ) -> None:
        message = describe(attempt.platform, error.message)
        if error.kind is ErrorKind.RATE_LIMITED:
            # Not the post's fault: wait as long as the platform asks, without counting it.
            wait = timedelta(seconds=error.retry_after) if error.retry_after else self._backoff
            drain.throttled[connection_id] = (self._clock() + wait, message)
            await self._defer(attempt, message, count_attempt=False, wait=wait)
            drain.report.deferred += 1
            bound.warning("platform rate limit, unpublish deferred", error=message)
            return
        if error.kind is ErrorKind.PERMANENT:
            # Includes refusals (TikTok, Instagram): a person has to remove the post in the app.
            async with self._db.transaction() as session:
                post = await session.get(Post, attempt.post_id)
                if post is not None:
                    post.status = PostStatus.UNPUBLISH_FAILED
                    post.last_error = message
                await _delete_job(session, attempt.job_id)
        else:
            if error.kind is ErrorKind.AUTH:
                # A fresh token rejected too (or none could be had): only the user can fix it.
                message = reauthenticate_message(attempt.platform, error.message)
                async with self._db.transaction() as session:
                    stored = await session.get(PlatformConnection, connection_id)
                    if stored is not None:
                        stored.state = ConnectionState.EXPIRED
                        stored.state_message = error.message
            await self._defer(attempt, message, count_attempt=True)
        drain.report.errors.append((attempt.listing_id, attempt.mls_number, message))
        bound.error("unpublish failed", error=message, kind=str(error.kind))

    async def _mark_unpublished(self, attempt: _Attempt) -> None:
        async with self._db.transaction() as session:
            post = await session.get(Post, attempt.post_id)
            if post is not None:
                post.status = PostStatus.UNPUBLISHED
                post.unpublished_at = self._clock()
                post.last_error = None
            await _delete_job(session, attempt.job_id)

    async def _defer(
        self,
        attempt: _Attempt,
        message: str,
        *,
        count_attempt: bool,
        wait: timedelta | None = None,
    ) -> None:
        attempts = attempt.attempts + (1 if count_attempt else 0)
        if wait is None:
            wait = min(self._backoff * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
        async with self._db.transaction() as session:
            job = await session.get(UnpublishJob, attempt.job_id)
            if job is not None:
                job.attempts = attempts
                job.last_error = message
                job.next_attempt_at = self._clock() + wait
            post = await session.get(Post, attempt.post_id)
            if post is not None:
                post.last_error = message


async def _delete_retrying(
    client: PlatformClient, platform_post_id: str, access_token: str
) -> DeleteOutcome:
    """The platform's delete, with passing failures tried again within this attempt."""
    for tries in range(1, DELETE_TRIES + 1):
        try:
            return await client.delete_post(platform_post_id, access_token)
        except PlatformError as exc:
            wait = _retry_wait(exc, tries)
            if wait is None or tries == DELETE_TRIES:
                raise
        await asyncio.sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises


def _retry_wait(error: PlatformError, tries: int) -> float | None:
    if error.kind is ErrorKind.TRANSIENT:
        return random.uniform(0, DELETE_RETRY_BACKOFF * 2 ** (tries - 1))
    if error.kind is ErrorKind.RATE_LIMITED and error.retry_after is not None:
        return error.retry_after if error.retry_after <= DELETE_RETRY_MAX_WAIT else None
    return None


def _attempt(job: UnpublishJob, post: Post, listing: Listing) -> _Attempt:
    return _Attempt(
        job_id=job.id,
        post_id=post.id,
        platform=post.platform,
        platform_post_id=post.platform_post_id,
        listing_id=listing.id,
        mls_number=listing.mls_number,
        user_id=listing.user_id,
        attempts=job.attempts,
        connection_id=listing.mls_connection_id,
    )


async def _delete_job(session: AsyncSession, job_id: str) -> None:
    job = await session.get(UnpublishJob, job_id)
    if job is not None:
        await session.delete(job)
