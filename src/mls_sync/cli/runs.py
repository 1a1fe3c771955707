"""`mls-sync runs`: the run history, for an operator with access to the database (every
user's runs, or one user's with `--user`), and `mls-sync runs show RUN_ID` for one run."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from mls_sync.cli.support import JsonFlag, fail, out, print_json, with_runtime
from mls_sync.observability import history
from mls_sync.runtime import Runtime
from mls_sync.services import runs, users

runs_app = typer.Typer(help="Sync run history, newest first.")

UserFilter = Annotated[
    str | None, typer.Option("--user", "-u", help="only this user's runs (email or id)")
]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="how many")]
BeforeOption = Annotated[
    str | None,
    typer.Option(
        help="only runs started before this ISO 8601 instant (UTC unless it has an offset); "
        "the list prints the value for the next page"
    ),
]


@runs_app.callback(invoke_without_command=True)
def runs_list(
    ctx: typer.Context,
    user: UserFilter = None,
    limit: LimitOption = 20,
    before: BeforeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The latest runs (every user's, unless --user)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        cursor = history.as_utc(datetime.fromisoformat(before)) if before else None
    except ValueError:
        fail(f"--before takes an ISO 8601 instant, not {before!r}", 2)

    async def work(runtime: Runtime) -> history.RunPage:
        async with runtime.db.transaction() as session:
            user_id = None
            if user is not None:
                user_id = (await users.find_user(session, user)).id
            return await runs.list_runs(session, user_id=user_id, limit=limit, before=cursor)

    page = with_runtime(work)
    if as_json:
        print_json(page.to_wire())
        return
    out.print(_table(page.runs))
    if page.next_before is not None:
        out.print(f"Older runs: --before {page.next_before.isoformat()}")


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonFlag = False) -> None:
    """One run in full: totals, status changes, errors and its response."""

    async def work(runtime: Runtime) -> history.RunDetail:
        async with runtime.db.transaction() as session:
            return await runs.get_run(session, run_id, user_id=None)

    run = with_runtime(work)
    if as_json:
        print_json(run.to_wire())
        return
    out.print(_table([run]))
    if run.status_changes:
        changes = Table(title="Status changes")
        for column in ("MLS #", "listing id", "old", "new"):
            changes.add_column(column)
        for change in run.status_changes:
            changes.add_row(
                change.get("mlsNumber"),
                change.get("listingId"),
                change.get("oldStatus"),
                change.get("newStatus"),
            )
        out.print(changes)
    if run.errors:
        errors = Table(title="Errors")
        for column in ("MLS #", "listing id", "error"):
            errors.add_column(column)
        for error in run.errors:
            errors.add_row(
                error.get("mlsNumber"), error.get("listingId"), f"[red]{error.get('error')}[/red]"
            )
        out.print(errors)


def _table(runs: list[history.RunSummary] | list[history.RunDetail]) -> Table:
    table = Table(title="Sync runs")
    columns = ("started", "run id", "trigger", "scope", "state", "seconds", "listings")
    for column in (*columns, "updated", "unpublished", "restored", "errors", "result"):
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    for run in runs:
        t = run.totals
        table.add_row(
            run.started_at.isoformat(timespec="seconds"),
            run.id,
            run.trigger,
            run.scope,
            run.state,
            f"{run.duration_seconds:.1f}" if run.duration_seconds is not None else "",
            str(t.total_listings),
            str(t.updated_listings),
            str(t.unpublished_posts),
            str(t.restored_listings),
            str(run.error_count),
            _result(run),
        )
    return table


_NUMERIC = {"seconds", "listings", "updated", "unpublished", "restored", "errors"}


def _result(run: history.RunSummary) -> str:
    if run.success is None:
        return run.state
    if run.success:
        return "[green]OK[/green]"
    return f"[red]FAILED[/red] {run.message or ''}"
