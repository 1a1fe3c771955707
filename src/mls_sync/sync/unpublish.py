"""Drain the unpublish outbox: take sold listings' posts down on their platforms.

Jobs were written in the same transaction as the status change that called for them, so a
crash never loses one. Each job's outcome is committed on its own: a post is marked
`unpublished` and its job removed together, after the platform confirmed the delete (or said the
post is already gone), so a job is never repeated once it is done; a crash between the
platform's answer and our commit repeats the call, and the platform answers "already gone".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import ConnectionState, PostStatus
from mls_sync.social.base import ErrorKind, PlatformClient, PlatformError
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import SecretDecryptError, TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.models import Listing, Post, UnpublishJob
from mls_sync.store.types import utcnow

log = structlog.get_logger(__name__)

MAX_BACKOFF = timedelta(hours=6)


def no_connection_warning(platform: str) -> str:
    return f"No {platform} connection found for unpublishing post"


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


class Unpublisher:
    def __init__(
        self,
        db: Database,
        cipher: TokenCipher,
        clients: Mapping[str, PlatformClient],
        *,
        backoff_seconds: float = 60.0,
        per_platform_concurrency: int = 4,
    ) -> None:
        self._db = db
        self._cipher = cipher
        self._clients = clients
        self._backoff = timedelta(seconds=backoff_seconds)
        self._per_platform = per_platform_concurrency

    async def drain(self, *, listing_ids: Collection[str] | None = None) -> DrainReport:
        """Attempt every due job (of these listings, or all); returns what happened."""
        now = utcnow()
        async with self._db.transaction() as session:
            rows = await repo.due_unpublish_jobs(session, now=now, listing_ids=listing_ids)
            attempts = [_attempt(job, post, listing) for job, post, listing in rows]
        report = DrainReport()
        limits: dict[str, asyncio.Semaphore] = {}

        async def run(attempt: _Attempt) -> None:
            limit = limits.setdefault(attempt.platform, asyncio.Semaphore(self._per_platform))
            async with limit:
                await self._attempt(attempt, report)

        await asyncio.gather(*(run(a) for a in attempts))
        return report

    async def _attempt(self, attempt: _Attempt, report: DrainReport) -> None:
        bound = log.bind(
            listing_id=attempt.listing_id,
            mls_number=attempt.mls_number,
            platform=attempt.platform,
            post_id=attempt.post_id,
        )
        async with self._db.transaction() as session:
            post = await session.get(Post, attempt.post_id)
            if post is None or post.status != PostStatus.PUBLISHED:
                await _delete_job(session, attempt.job_id)  # nothing left to take down
                return
            connection = await repo.platform_connection(session, attempt.user_id, attempt.platform)
            token = None
            problem = None
            if connection is None:
                problem = no_connection_warning(attempt.platform)
            elif connection.state != ConnectionState.ACTIVE:
                problem = f"{attempt.platform} connection expired: re-authentication needed"
            else:
                try:
                    token = self._cipher.decrypt(connection.access_token_encrypted)
                except SecretDecryptError as exc:
                    problem = str(exc)
            client = self._clients.get(attempt.platform)
            if problem is None and client is None:
                problem = f"Unpublishing on {attempt.platform} is not supported yet"
        if problem is not None or token is None or client is None:
            # The post stays published; the job waits for the user to (re)connect the platform.
            bound.warning(problem)
            await self._defer(attempt, problem or "", count_attempt=True)
            report.deferred += 1
            return

        try:
            outcome = await client.delete_post(attempt.platform_post_id, token)
        except PlatformError as exc:
            await self._failed(attempt, exc, report, bound)
            return

        async with self._db.transaction() as session:
            post = await session.get(Post, attempt.post_id)
            if post is not None:
                post.status = PostStatus.UNPUBLISHED
                post.unpublished_at = utcnow()
                post.last_error = None
            await _delete_job(session, attempt.job_id)
        report.unpublished_by_listing[attempt.listing_id] += 1
        bound.info("post unpublished", outcome=str(outcome))

    async def _failed(
        self,
        attempt: _Attempt,
        error: PlatformError,
        report: DrainReport,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> None:
        message = f"{attempt.platform}: {error.message}"
        if error.kind is ErrorKind.RATE_LIMITED:
            # Not the post's fault: wait as long as the platform asks, without counting it.
            wait = timedelta(seconds=error.retry_after) if error.retry_after else self._backoff
            await self._defer(attempt, message, count_attempt=False, wait=wait)
            report.deferred += 1
            bound.warning("platform rate limit, unpublish deferred", error=message)
            return
        if error.kind is ErrorKind.PERMANENT:
            async with self._db.transaction() as session:
                post = await session.get(Post, attempt.post_id)
                if post is not None:
                    post.status = PostStatus.UNPUBLISH_FAILED
                    post.last_error = message
                await _delete_job(session, attempt.job_id)
        else:
            if error.kind is ErrorKind.AUTH:
                async with self._db.transaction() as session:
                    connection = await repo.platform_connection(
                        session, attempt.user_id, attempt.platform
                    )
                    if connection is not None:
                        connection.state = ConnectionState.EXPIRED
                        connection.state_message = error.message
            await self._defer(attempt, message, count_attempt=True)
        report.errors.append((attempt.listing_id, attempt.mls_number, message))
        bound.error("unpublish failed", error=message, kind=str(error.kind))

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
                job.next_attempt_at = _later(wait)
            post = await session.get(Post, attempt.post_id)
            if post is not None:
                post.last_error = message


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
    )


async def _delete_job(session: AsyncSession, job_id: str) -> None:
    job = await session.get(UnpublishJob, job_id)
    if job is not None:
        await session.delete(job)


def _later(wait: timedelta) -> datetime:
    return utcnow() + wait
