"""What the dashboard shows, read for one signed-in user and never for anyone else.

Every query filters on the user's id (store/sql/dashboard.py holds the SQL-only ones); the
page renders only what these rows say. The runs
themselves come from `uow.runs.newest`, shared with the run-history API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.status import ConnectionState
from mls_sync.services.feeds import suspension_of
from mls_sync.store import repositories as repo
from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import (
    PlatformConnection,
    SyncRun,
)
from mls_sync.store.open import sql_session
from mls_sync.store.sql import dashboard as queries
from mls_sync.store.types import utcnow

RECENT_RUNS = 20
RECENT_CHANGES = 20
RECENT_ERRORS = 20
STUCK_JOBS = 50
# A job queued by the status change of a run that is still draining is due "now" and about to
# be done; only one that has been due for a while, or has already failed, is stuck.
STUCK_AFTER = timedelta(minutes=1)
# Connection states that only the owner can fix, by signing in to the MLS or platform again.
NEEDS_REAUTH = (ConnectionState.EXPIRED, ConnectionState.ERROR)
EXPIRING = "expiring"  # shown for an active token the token care found about to die


@dataclass(frozen=True)
class ConnectionRow:
    id: str
    name: str
    base_url: str
    state: str
    state_message: str | None
    last_sync_at: datetime | None
    # While the connection's feed is still on its first load: the records loaded so far.
    loading_records: int | None = None
    # While the MLS has suspended the feed's credential (over its limits): until when.
    suspended_until: datetime | None = None


@dataclass(frozen=True)
class ReauthRow:
    kind: str  # "MLS" or the platform's name
    name: str
    state: str
    message: str | None


@dataclass(frozen=True)
class RunRow:
    id: str
    trigger: str
    scope: str
    connection_name: str | None
    state: str
    success: bool | None
    message: str | None
    started_at: datetime
    finished_at: datetime | None
    totals: dict[str, Any]
    errors: int
    status_changes: int

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class ChangeRow:
    at: datetime
    mls_number: str
    listing_key: str
    old_status: str
    new_status: str
    source: str


@dataclass(frozen=True)
class ErrorRow:
    at: datetime
    connection_name: str | None
    mls_number: str | None
    error: str


@dataclass(frozen=True)
class StuckJobRow:
    mls_number: str
    platform: str
    platform_post_id: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


@dataclass
class DashboardData:
    connections: list[ConnectionRow] = field(default_factory=list)
    needs_reauth: list[ReauthRow] = field(default_factory=list)
    runs: list[RunRow] = field(default_factory=list)
    changes: list[ChangeRow] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    stuck_jobs: list[StuckJobRow] = field(default_factory=list)


async def dashboard_data(
    uow: UnitOfWork, user_id: str, *, now: datetime | None = None
) -> DashboardData:
    session = sql_session(uow, "The dashboard page")
    connections = await _connections(uow, user_id)
    names = {c.id: c.name for c in connections}
    runs = await uow.runs.newest(user_id=user_id, limit=RECENT_RUNS)
    return DashboardData(
        connections=connections,
        needs_reauth=[
            *(
                ReauthRow("MLS", c.name, c.state, c.state_message)
                for c in connections
                if c.state in NEEDS_REAUTH
            ),
            *await _platforms_needing_reauth(session, user_id),
        ],
        runs=[_run_row(run, names) for run in runs],
        changes=await latest_status_changes(session, user_id),
        errors=recent_errors(runs, names),
        stuck_jobs=await stuck_unpublish_jobs(session, user_id, now=now),
    )


async def _connections(uow: UnitOfWork, user_id: str) -> list[ConnectionRow]:
    rows = []
    for c in await uow.connections.of_user(user_id):
        feed = await repo.feed_of(uow, c)
        loading = None if feed.loaded_at else await uow.replica.count(feed.id)
        rows.append(
            ConnectionRow(
                id=c.id,
                name=c.name or feed.name or feed.base_url,
                base_url=feed.base_url,
                state=c.state,
                state_message=c.state_message,
                last_sync_at=feed.last_run_at,
                loading_records=loading,
                suspended_until=suspension_of(feed),
            )
        )
    return rows


async def _platforms_needing_reauth(session: AsyncSession, user_id: str) -> list[ReauthRow]:
    """Expired platform connections, and active ones whose token cannot be refreshed and was
    found expiring soon (the token care flags them days ahead, with the date)."""
    found = await queries.platforms_to_reconnect(session, user_id, states=NEEDS_REAUTH)
    return [_platform_reauth_row(p) for p in found]


def _platform_reauth_row(connection: PlatformConnection) -> ReauthRow:
    name = connection.platform
    if connection.state in NEEDS_REAUTH or connection.expires_at is None:
        return ReauthRow(name, name, connection.state, connection.state_message)
    return ReauthRow(
        name,
        name,
        EXPIRING,
        f"The token expires on {connection.expires_at:%Y-%m-%d %H:%M} UTC and cannot be "
        "refreshed: reconnect before then, or posts stay up when a listing sells.",
    )


def _run_row(run: SyncRun, connection_names: dict[str, str]) -> RunRow:
    return RunRow(
        id=run.id,
        trigger=run.trigger,
        scope=run.scope,
        connection_name=connection_names.get(run.scope_id or ""),
        state=run.state,
        success=run.success,
        message=run.message,
        started_at=run.started_at,
        finished_at=run.finished_at,
        totals=run.totals or {},
        errors=len(run.errors or []),
        status_changes=len(run.status_changes or []),
    )


async def latest_status_changes(
    session: AsyncSession, user_id: str, *, limit: int = RECENT_CHANGES
) -> list[ChangeRow]:
    return [
        ChangeRow(h.at, mls_number, listing_key, h.old_status, h.new_status, h.source)
        for h, mls_number, listing_key in await queries.status_changes(
            session, user_id, limit=limit
        )
    ]


def recent_errors(
    runs: Sequence[SyncRun], connection_names: dict[str, str], *, limit: int = RECENT_ERRORS
) -> list[ErrorRow]:
    """The listing errors of these runs (newest first), and the message of each run that
    failed as a whole (an expired MLS connection has no listing errors)."""
    rows: list[ErrorRow] = []
    for run in runs:
        name = connection_names.get(run.scope_id or "")
        if run.success is False and not run.errors:
            rows.append(ErrorRow(run.started_at, name, None, run.message or "run failed"))
        rows.extend(
            ErrorRow(run.started_at, name, e.get("mlsNumber"), str(e.get("error", "")))
            for e in run.errors or []
            if isinstance(e, dict)
        )
        if len(rows) >= limit:
            break
    return rows[:limit]


async def stuck_unpublish_jobs(
    session: AsyncSession,
    user_id: str,
    *,
    now: datetime | None = None,
    limit: int = STUCK_JOBS,
) -> list[StuckJobRow]:
    """Outbox jobs that already failed at least once, or have been due for a while."""
    due_before = (now or utcnow()) - STUCK_AFTER
    jobs = await queries.stuck_jobs(session, user_id, due_before=due_before, limit=limit)
    return [
        StuckJobRow(
            mls_number=mls_number,
            platform=platform,
            platform_post_id=post_id,
            attempts=job.attempts,
            next_attempt_at=job.next_attempt_at,
            last_error=job.last_error,
        )
        for job, platform, post_id, mls_number in jobs
    ]
