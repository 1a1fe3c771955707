"""`mls-sync sync connection|user|listing|all`: run a sync now, with a progress bar on a
terminal, and print its answer (`--json`: the product's response, as the API gives it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from mls_sync import actions
from mls_sync.cli.support import JsonFlag, out, print_json, sync_progress, with_runtime
from mls_sync.domain.errors import USER_NOT_FOUND, NotFound
from mls_sync.domain.results import AggregatedResult, SyncActionResponse, SyncResult
from mls_sync.runtime import Runtime
from mls_sync.services import users

sync_app = typer.Typer(help="Run a sync now.", no_args_is_help=True)


@sync_app.command("connection")
def sync_connection(connection_id: str, as_json: JsonFlag = False) -> None:
    """Sync every listing of one MLS connection."""
    _sync_with_progress(
        lambda engine, progress: actions.sync_mls_status(
            connection_id, engine=engine, progress=progress, trigger="cli"
        ),
        as_json,
    )


@sync_app.command("user")
def sync_user(
    user: Annotated[str, typer.Argument(help="user id or email")], as_json: JsonFlag = False
) -> None:
    """Sync every MLS connection of one user."""

    async def call(engine: Any, progress: Any) -> SyncActionResponse[AggregatedResult]:
        try:
            async with engine.db.transaction() as session:
                found = await users.find_user(session, user)
        except NotFound:
            return SyncActionResponse[AggregatedResult](success=False, message=USER_NOT_FOUND)
        return await actions.sync_all_mls_connections(
            found.id, engine=engine, progress=progress, trigger="cli"
        )

    _sync_with_progress(call, as_json)


@sync_app.command("listing")
def sync_listing(listing_id: str, as_json: JsonFlag = False) -> None:
    """Sync one listing."""
    _sync_with_progress(
        lambda engine, _progress: actions.sync_listing_status(
            listing_id, engine=engine, trigger="cli"
        ),
        as_json,
    )


def _sync_with_progress(
    call: Callable[[Any, Any], Awaitable[SyncActionResponse[Any]]],
    as_json: bool,
    *,
    label: str = "Checking listings",
    show: Callable[[SyncActionResponse[Any]], None] | None = None,
) -> None:
    """Run `call(engine, advance)` under a progress bar, print its answer (the response JSON
    with --json, else `show`'s tables) and exit 0 or 1 as the answer succeeded."""

    async def work(runtime: Runtime) -> SyncActionResponse[Any]:
        with sync_progress(label, quiet=as_json) as advance:
            return await call(runtime.engine, advance)

    response = with_runtime(work, quiet=as_json)
    if as_json:
        print_json(response.to_wire())
    else:
        (show or print_response)(response)
    raise typer.Exit(0 if response.success else 1)


def _headline(response: SyncActionResponse[Any]) -> None:
    colour = "green" if response.success else "red"
    out.print(f"[{colour}]{'OK' if response.success else 'FAILED'}[/{colour}] {response.message}")


def print_response(response: SyncActionResponse[Any]) -> None:
    _headline(response)
    data = response.data
    if not isinstance(data, SyncResult):
        return
    changes = Table(title="Status changes")
    for column in ("MLS #", "listing id", "old", "new"):
        changes.add_column(column)
    for change in data.status_changes:
        changes.add_row(change.mls_number, change.listing_id, change.old_status, change.new_status)
    out.print(changes)
    if data.errors:
        errors = Table(title="Errors")
        for column in ("MLS #", "listing id", "error"):
            errors.add_column(column)
        for error in data.errors:
            errors.add_row(error.mls_number, error.listing_id, f"[red]{error.error}[/red]")
        out.print(errors)
    totals = Table(title="Totals")
    for column in ("total listings", "updated", "posts unpublished", "restored", "errors"):
        totals.add_column(column, justify="right")
    totals.add_row(
        str(data.total_listings),
        str(data.updated_listings),
        str(data.unpublished_posts),
        str(data.restored_listings),
        str(len(data.errors)),
    )
    out.print(totals)


@sync_app.command("all")
def sync_all(as_json: JsonFlag = False) -> None:
    """Sync every active MLS connection of every user (what the cron endpoint does)."""

    _sync_with_progress(
        lambda engine, advance: actions.sync_all_users(
            engine=engine, trigger="cli", on_connection_done=advance
        ),
        as_json,
        label="Syncing MLS connections",
        show=_print_connections,
    )


def _print_connections(response: SyncActionResponse[Any]) -> None:
    _headline(response)
    if not isinstance(response.data, AggregatedResult) or not response.data.connections:
        return
    table = Table(title="MLS connections")
    for column in ("connection", "listings", "updated", "unpublished", "restored", "errors", ""):
        table.add_column(column)
    for c in response.data.connections:
        note = "skipped: already syncing" if c.skipped else ("" if c.success else c.message)
        table.add_row(
            c.connection_id,
            str(c.total_listings),
            str(c.updated_listings),
            str(c.unpublished_posts),
            str(c.restored_listings),
            str(len(c.errors)),
            note,
        )
    out.print(table)
