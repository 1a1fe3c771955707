"""Run history as people read it: one stored `sync_runs` row as a summary (lists) or in full
with the run's final response in the product spec's `{success, message, data}` format. Shared
by `GET /api/sync-runs` and `mls-sync runs`; camelCase on the wire."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from mls_sync.store.models import SyncRun

TOTAL_KEYS = ("totalListings", "updatedListings", "unpublishedPosts", "restoredListings")


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class RunTotals(_Wire):
    total_listings: int = 0
    updated_listings: int = 0
    unpublished_posts: int = 0
    restored_listings: int = 0


class RunResponse(_Wire):
    """The response the run gave (or would have given): `data` is a SyncResult, or an
    AggregatedResult for a run over many connections."""

    success: bool
    message: str
    data: dict[str, Any]


class RunSummary(_Wire):
    id: str
    trigger: str  # manual, cli, cron, scheduler, api, ...
    scope: str  # feed, connection, listing, user, all
    scope_id: str | None
    # A connection's part of a feed's run: that feed run's id.
    feed_run_id: str | None = None
    state: str  # queued, running, finished
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None  # None until the run has finished
    success: bool | None  # None until the run has finished
    message: str | None
    totals: RunTotals
    error_count: int
    status_change_count: int
    progress: dict[str, Any]


class RunDetail(RunSummary):
    errors: list[dict[str, Any]]
    status_changes: list[dict[str, Any]]
    response: RunResponse | None  # None until the run has finished


class RunPage(_Wire):
    runs: list[RunSummary]
    # Pass as `before` for the next (older) page; None on the last page.
    next_before: datetime | None


def _status_changes(run: SyncRun) -> list[dict[str, Any]]:
    # Rows written before schema 0003 kept the changes inside `totals`.
    return list(run.status_changes or (run.totals or {}).get("statusChanges", []))


def summary(run: SyncRun) -> RunSummary:
    totals = run.totals or {}
    duration = None
    if run.finished_at is not None:
        duration = round(max(0.0, (run.finished_at - run.started_at).total_seconds()), 3)
    return RunSummary(
        id=run.id,
        trigger=run.trigger,
        scope=run.scope,
        scope_id=run.scope_id,
        feed_run_id=run.feed_run_id,
        state=run.state,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_seconds=duration,
        success=run.success,
        message=run.message,
        totals=RunTotals.model_validate({k: totals.get(k, 0) for k in TOTAL_KEYS}),
        error_count=len(run.errors or []),
        status_change_count=len(_status_changes(run)),
        progress=dict(run.progress or {}),
    )


def detail(run: SyncRun) -> RunDetail:
    errors = list(run.errors or [])
    changes = _status_changes(run)
    response = None
    if run.state == "finished" and run.success is not None:
        totals = {k: v for k, v in (run.totals or {}).items() if k != "statusChanges"}
        data = {**totals, "errors": errors, "statusChanges": changes}
        response = RunResponse(success=run.success, message=run.message or "", data=data)
    return RunDetail(
        **summary(run).model_dump(),
        errors=errors,
        status_changes=changes,
        response=response,
    )


def as_utc(value: datetime | None) -> datetime | None:
    """A `before` cursor as typed by a person: without an offset it is read as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def page(runs: list[SyncRun], limit: int) -> RunPage:
    next_before = runs[-1].started_at if len(runs) == limit and runs else None
    return RunPage(runs=[summary(r) for r in runs], next_before=next_before)
