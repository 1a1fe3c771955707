"""Deferred runs over many connections: fan out one job per connection (a user's run) or per
feed (everyone's: each MLS feed is replicated once, whatever its number of members), sum up at
the end.

With the procrastinate executor, a user's or everyone's sync is a parent run whose
connections (or feeds) are synced by whichever workers take their jobs. The parent learns
nothing from the jobs themselves: each child records its own run row, and whoever finishes a
child settles the parent from the rows (progress, and the summed result once the last child is
done), so a retried or duplicated job can never count twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from mls_sync.domain.results import AggregatedResult, ConnectionSyncResult, SyncResult
from mls_sync.store import deferred_runs
from mls_sync.store import repositories as repo
from mls_sync.store.interface import Storage
from mls_sync.store.models import SyncRun
from mls_sync.sync.guard import SYNC_IN_PROGRESS
from mls_sync.sync.outcome import Outcome, summary
from mls_sync.sync.runs import aggregate_outcomes

# Defers one connection's (or feed's) job; False when one for it is already waiting.
DeferConnection = Callable[[str, str, str], Awaitable[bool]]  # (child's id, run id, parent)


async def fan_out(
    db: Storage,
    parent_id: str,
    connection_ids: Sequence[str],
    defer: DeferConnection,
    *,
    scope: str = "connection",
) -> None:
    """Start the parent run with one child run and one job per connection (or feed, with
    `scope="feed"`). One that already has a sync waiting is not queued twice: its child is
    finished as skipped."""
    async with db.transaction() as session:
        parent = await deferred_runs.get_run(session, parent_id)
        if parent is None:
            return
        if parent.state == deferred_runs.QUEUED:
            children = await deferred_runs.start_fan_out(
                session, parent, connection_ids, scope=scope
            )
        else:  # this job is a retry: queue what the first attempt did not get to
            _, children = await deferred_runs.lock_family(session, parent_id)
        pending = [
            (child.id, child.scope_id or "")
            for child in children
            if child.state == deferred_runs.QUEUED
        ]
    for run_id, connection_id in pending:
        if not await defer(connection_id, run_id, parent_id):
            async with db.transaction() as session:
                await deferred_runs.finish_unrun(
                    session, run_id, message=SYNC_IN_PROGRESS, skipped=True
                )
    await settle_parent(db, parent_id)


async def settle_parent(db: Storage, parent_id: str) -> None:
    """Count the parent's finished children; when none is left, finish the parent with the
    summed result (the same answer an inline run over these connections gives)."""
    async with db.transaction() as session:
        parent, children = await deferred_runs.lock_family(session, parent_id)
        if parent is None:
            return
        done = sum(1 for child in children if child.state == deferred_runs.FINISHED)
        parent.progress = {"connectionsDone": done, "connectionsTotal": len(children)}
        if parent.state != deferred_runs.RUNNING or done < len(children):
            return
        outcome, aggregated = _aggregate_children(children)
        await repo.finish_run(
            session,
            parent.id,
            success=outcome.success,
            message=outcome.message,
            totals=aggregated.model_dump(mode="json", by_alias=True, exclude={"errors"}),
            errors=[e.to_wire() for e in aggregated.errors],
        )
        parent.status_changes = [c.to_wire() for c in aggregated.status_changes]


def _aggregate_children(children: Sequence[SyncRun]) -> tuple[Outcome, AggregatedResult]:
    """The children's summed answer. A connection's child is one connection; a feed's child
    (a run over everyone) adds its totals and its members' parts, as the feed run kept them
    (members that had something happen; idle ones are only in the totals)."""
    if not any(child.scope == "feed" for child in children):
        return aggregate_outcomes(
            [child.scope_id or "" for child in children],
            {
                child.scope_id or "": _outcome(child)
                for child in children
                if not (child.totals or {}).get("skipped")
            },
        )
    aggregated = AggregatedResult()
    attempted = succeeded = 0
    for child in children:
        totals = dict(child.totals or {})
        if totals.get("skipped"):
            aggregated.skipped_connections += 1
            continue
        attempted += 1
        succeeded += bool(child.success)
        aggregated.add(_outcome(child).result)
        aggregated.connections.extend(
            ConnectionSyncResult.model_validate(part) for part in totals.get("connections", [])
        )
    outcome = Outcome(
        attempted == 0 or succeeded > 0,
        f"Synced {succeeded} of {attempted} MLS feeds: {summary(aggregated)}",
        aggregated,
    )
    return outcome, aggregated


def _outcome(child: SyncRun) -> Outcome:
    totals = dict(child.totals or {})
    totals.pop("connections", None)
    if not totals.get("statusChanges") and child.status_changes:
        totals["statusChanges"] = child.status_changes
    result = SyncResult.model_validate({**totals, "errors": child.errors or []})
    return Outcome(bool(child.success), child.message or "", result)
