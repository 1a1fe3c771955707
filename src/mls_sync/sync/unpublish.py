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
a token the platform rejects is refreshed once and the delete tried once more (safely across
processes: `platform_tokens.py`). A refresh the platform refuses, or an answer that says the user
must log in again (a lapsed permission), marks the connection `expired`; its posts stay
`published` until the user reconnects. Keeping tokens alive while no post needs deleting is the
token care's job (`token_care.py`).

Rate limits defer the job to the time the platform names without counting an attempt, and the
rest of that connection's jobs in the same drain wait too instead of knocking again. A platform
that says our API version is retired is our configuration, not the post's: the job waits
without counting an attempt, the connection is left alone, the other jobs of that client in the
drain wait without calling, and MlsSyncPlatformApiVersionRetired fires once per platform and
version (across processes: a marker row).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from mls_sync.domain.errors import internal_error
from mls_sync.domain.status import ConnectionState, PostStatus
from mls_sync.observability.alerts import PlatformAlert, version_retired_alert
from mls_sync.observability.metrics import METRICS
from mls_sync.social.base import (
    DeleteOutcome,
    ErrorKind,
    PlatformClient,
    PlatformError,
    Tokens,
    label,
)
from mls_sync.social.registry import client_for
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.interface import Storage, UnitOfWork
from mls_sync.store.models import Listing, PlatformConnection, Post, UnpublishJob
from mls_sync.store.types import utcnow
from mls_sync.sync.platform_tokens import PlatformTokens, ReauthNeeded
from mls_sync.sync.token_care import CHECK_EVERY, WARN_WITHIN, TokenCare

log = structlog.get_logger(__name__)
Logger = structlog.typing.FilteringBoundLogger

MAX_BACKOFF = timedelta(hours=6)
# Longer than a delete plus a refresh plus a retry can take with the HTTP timeouts we use.
DEFAULT_LEASE = timedelta(minutes=5)
# A marker that never lapses: "this alert was sent" (alerts that fire once, ever).
ONCE = timedelta(days=365 * 100)
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
    changed_at: datetime | None  # the MLS's change that called for it (takedown latency)


@dataclass(frozen=True)
class _Connection:
    """The platform connection as one attempt found it, tokens decrypted (memory only)."""

    id: str
    tokens: Tokens


@dataclass
class _Drain:
    report: DrainReport = field(default_factory=DrainReport)
    # platform connection id -> (throttled until, the platform's message)
    throttled: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    # client -> the platform's "this API version is retired" message, seen in this drain
    retired: dict[int, str] = field(default_factory=dict)


AlertSink = Callable[[PlatformAlert], Awaitable[None]]


async def _log_only(alert: PlatformAlert) -> None:
    log.error(f"Alert {alert.rule}: {alert.summary}", alert=alert.rule, **alert.log_fields())


class Unpublisher:
    def __init__(
        self,
        db: Storage,
        cipher: TokenCipher,
        clients: Mapping[str, PlatformClient],
        *,
        backoff_seconds: float = 60.0,
        per_platform_concurrency: int = 4,
        lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime] = utcnow,
        alerts: AlertSink = _log_only,
        tokens: PlatformTokens | None = None,
        token_warn_within: timedelta = WARN_WITHIN,
        token_check_every: timedelta = CHECK_EVERY,
        claimer: str | None = None,
    ) -> None:
        self._db = db
        # Names this process's claims (its lease-holder id), so a process that takes over a
        # dead one's feed can release the dead one's claims at once (sync/engine.py).
        self.claimer = claimer
        self._clients = clients
        self._backoff = timedelta(seconds=backoff_seconds)
        self._per_platform = per_platform_concurrency
        self._lease = lease
        self._clock = clock
        self.alerts = alerts  # the runtime points it at the RunMonitor
        self.tokens = tokens or PlatformTokens(db, cipher, clock=clock)
        self.token_care = TokenCare(
            db,
            self.tokens,
            clients,
            self._alert,
            clock=clock,
            warn_within=token_warn_within,
            check_every=token_check_every,
        )
        # One cap per platform, shared by every drain of this process (a user-wide sync
        # drains several MLS connections at once); each lives while anyone waits on it.
        self._caps: weakref.WeakValueDictionary[str, asyncio.Semaphore] = (
            weakref.WeakValueDictionary()
        )

    def now(self) -> datetime:
        """The outbox's clock (tests move it instead of sleeping)."""
        return self._clock()

    async def drain(self, *, listing_ids: Collection[str] | None = None) -> DrainReport:
        """Attempt every due job (of these listings, or all); returns what happened."""
        async with self._db.transaction() as session:
            rows = await session.outbox.due(now=self._clock(), listing_ids=listing_ids)
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
                            internal_error(exc),
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
            if not await session.outbox.claim(
                attempt.job_id, now=now, until=now + self._lease, by=self.claimer
            ):
                return  # another drain took it first
            post = await session.get(Post, attempt.post_id)
            if post is None or post.status != PostStatus.PUBLISHED:
                await _delete_job(session, attempt.job_id)  # nothing left to take down
                return
            stored = await session.platforms.get(attempt.user_id, attempt.platform)
            login = stored.login if stored is not None else None
            client = client_for(self._clients, attempt.platform, login)
            problem, connection = self._usable(attempt.platform, stored, client)
        if problem is not None or connection is None or client is None:
            # The post stays published; the job waits for the user to (re)connect the platform.
            bound.warning(problem)
            await self._defer(attempt, problem or "", count_attempt=True)
            drain.report.deferred += 1
            return

        retired = drain.retired.get(id(client))
        if retired is not None:
            # Asking again with the same version cannot help until an operator changes it.
            await self._defer(attempt, retired, count_attempt=False, wait=self._backoff)
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
        except ReauthNeeded as exc:
            message = reauthenticate_message(attempt.platform, str(exc))
            await self._defer(attempt, message, count_attempt=True)
            drain.report.errors.append((attempt.listing_id, attempt.mls_number, message))
            bound.error("platform token refresh refused, re-authentication needed", error=message)
            return
        except PlatformError as exc:
            if exc.kind is ErrorKind.VERSION_RETIRED:
                await self._version_retired(attempt, client, exc, drain, bound)
            else:
                await self._failed(attempt, connection.id, exc, drain, bound)
            return

        await self._mark_unpublished(attempt)
        drain.report.unpublished_by_listing[attempt.listing_id] += 1
        changed = attempt.changed_at
        latency = (self._clock() - changed).total_seconds() if changed is not None else None
        METRICS.post_unpublished(attempt.platform, latency_seconds=latency)
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
            return None, _Connection(stored.id, self.tokens.decrypt(stored))
        except SecretDecryptError as exc:
            return str(exc), None

    async def _delete(
        self, attempt: _Attempt, client: PlatformClient, connection: _Connection
    ) -> DeleteOutcome:
        """Delete with a fresh enough token; on a rejected token, refresh once and retry once."""
        tokens = connection.tokens
        refreshed = False
        if client.supports_delete and self.tokens.expiring(tokens):
            try:
                tokens = await self.tokens.refresh(
                    connection.id, client, tokens, final=self.tokens.expired(tokens)
                )
                refreshed = True
            except PlatformError:
                if self.tokens.expired(tokens):
                    raise
                # Refused or unreachable ahead of time, but the token has not run out yet: use
                # it while it lasts.
        try:
            return await _delete_retrying(client, attempt.platform_post_id, tokens.access_token)
        except PlatformError as exc:
            if exc.kind is not ErrorKind.AUTH or refreshed or not client.supports_delete:
                raise
        tokens = await self.tokens.refresh(connection.id, client, tokens, final=True)
        return await _delete_retrying(client, attempt.platform_post_id, tokens.access_token)

    async def keep_tokens_alive(self) -> int:
        """Refresh, verify or flag every platform connection's tokens ahead of need (the
        token care, `token_care.py`); how many were refreshed or verified. Never raises."""
        return await self.token_care.run()

    async def _alert(self, alert: PlatformAlert) -> None:
        await self.alerts(alert)  # looked up at call time: the runtime sets it after building

    # outcomes

    async def _version_retired(
        self,
        attempt: _Attempt,
        client: PlatformClient,
        error: PlatformError,
        drain: _Drain,
        bound: Logger,
    ) -> None:
        """Our configuration: the job waits uncounted, the user's connection is left alone."""
        message = describe(attempt.platform, error.message)
        drain.retired[id(client)] = message
        await self._defer(attempt, message, count_attempt=False, wait=self._backoff)
        drain.report.deferred += 1
        version = error.api_version or getattr(client, "api_version", "") or ""
        METRICS.platform_version_refused(attempt.platform, version)
        bound.error("platform API version retired, unpublish deferred", error=message)
        if await self._first_time(f"version-retired:{attempt.platform}:{version}"):
            await self.alerts(version_retired_alert(attempt.platform, version, message))

    async def _first_time(self, key: str) -> bool:
        """True once per key across every process on this database (a marker that never
        lapses, in the lease table: one atomic insert decides who was first)."""
        marker = "once:" + hashlib.sha256(key.encode()).hexdigest()[:27]
        async with self._db.transaction() as session:
            return await session.leases.take(marker, "alerts", now=self._clock(), ttl=ONCE)

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
            if error.kind in (ErrorKind.AUTH, ErrorKind.RECONNECT):
                # A fresh token rejected too, none could be had, or a permission lapsed: only
                # the user can fix it.
                message = reauthenticate_message(attempt.platform, error.message)
                await self.tokens.mark_expired(connection_id, error.message)
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
                job.claimed_by = None
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
        changed_at=listing.mls_modified_at,
    )


async def _delete_job(session: UnitOfWork, job_id: str) -> None:
    job = await session.get(UnpublishJob, job_id)
    if job is not None:
        await session.delete(job)
