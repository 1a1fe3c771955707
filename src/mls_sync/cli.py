"""The `mls-sync` command line (Typer + Rich). Commands parse, call `actions`, and print."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from mls_sync import (
    actions,
    cli_bench,
    cli_doctor,
    cli_keys,
    cli_manage,
    cli_runs,
    cli_service,
    cli_worker,
)
from mls_sync.cli_support import err, load_settings, out, print_json, sync_progress, with_runtime
from mls_sync.domain.results import AggregatedResult, SyncActionResponse, SyncResult
from mls_sync.observability import configure_logging
from mls_sync.runtime import Runtime

app = typer.Typer(
    help="Keep listings in step with their MLS.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
)
sync_app = typer.Typer(help="Run a sync now.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")
app.add_typer(db_app, name="db")
# The service (serve, sync all) and the management commands live in modules of their own.
app.command("serve")(cli_service.serve)
app.command("sandbox")(cli_service.sandbox)
app.command("bench")(cli_bench.bench)
app.command("worker")(cli_worker.worker)
sync_app.command("all")(cli_service.sync_all)
for _name, _sub_app in cli_manage.SUB_APPS.items():
    app.add_typer(_sub_app, name=_name)
app.add_typer(cli_runs.runs_app, name="runs")
app.add_typer(cli_keys.keys_app, name="keys")
app.command("doctor")(cli_doctor.doctor)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print only the response JSON.")]


@app.command()
def demo(as_json: JsonFlag = False) -> None:
    """Sync a seeded sandbox MLS on a throwaway database and show what changed."""
    from mls_sync.demo import run_demo

    configure_logging(
        fmt="console" if not as_json else "json", level="WARNING" if as_json else "INFO"
    )
    report = asyncio.run(run_demo())
    if as_json:
        print(json.dumps(report.response.to_wire(), indent=2))
    else:
        _print_response(report.response)
        posts = Table(title="Posts of sold listings", show_lines=False)
        for column in ("MLS #", "platform", "post status", "note"):
            posts.add_column(column)
        for mls_number, platform, status, note in report.posts:
            style = "green" if status == "unpublished" else "yellow"
            posts.add_row(mls_number, platform, f"[{style}]{status}[/{style}]", note or "")
        out.print(posts)
    raise typer.Exit(0 if report.response.success else 1)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the database migrations (SQLite by default, PostgreSQL with DATABASE_URL); on
    PostgreSQL also procrastinate's tables for `mls-sync worker`, once. On DynamoDB
    (DATABASE_URL=dynamodb://PREFIX?...) create the tables that do not exist yet."""
    from mls_sync.store.database import Database
    from mls_sync.store.migrate import current_revision, upgrade
    from mls_sync.store.open import open_database

    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    if not isinstance(opened := open_database(settings.async_database_url), Database):
        _create_dynamodb_tables(opened)
        return

    async def go() -> str | None:
        db = Database(settings.async_database_url)
        try:
            await upgrade(db, revision)
            if not db.is_sqlite:
                from mls_sync.worker.schema import install_schema

                if await install_schema(settings):
                    err.print("procrastinate schema installed")
            return await current_revision(db)
        finally:
            await db.dispose()

    try:
        now = asyncio.run(go())
    except OSError as exc:
        err.print(f"[red]Cannot reach the database:[/red] {exc}")
        raise typer.Exit(1) from None
    err.print(f"Database at revision [bold]{now}[/bold]")


def _create_dynamodb_tables(db: Any) -> None:
    async def go() -> list[str]:
        try:
            return list(await db.create_tables())
        finally:
            await db.dispose()

    try:
        created = asyncio.run(go())
    except Exception as exc:  # botocore's errors: no endpoint, credentials or permission
        err.print(f"[red]Cannot create the DynamoDB tables:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    tables = f"{db.tables.data_table}, {db.tables.coordination_table}"
    err.print(
        f"DynamoDB tables ready ({tables}); created now: {', '.join(created) or 'none'}",
        soft_wrap=True,
    )


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
        from mls_sync.store import repositories as repo

        async with engine.db.transaction() as session:
            found = await repo.find_user(session, user)
        if found is None:
            return SyncActionResponse[AggregatedResult](success=False, message="User not found")
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
    call: Callable[[Any, Any], Awaitable[SyncActionResponse[Any]]], as_json: bool
) -> None:
    async def work(runtime: Runtime) -> SyncActionResponse[Any]:
        with sync_progress("Checking listings", quiet=as_json) as advance:
            return await call(runtime.engine, advance)

    response = with_runtime(work, quiet=as_json)
    if as_json:
        print_json(response.to_wire())
    else:
        _print_response(response)
    raise typer.Exit(0 if response.success else 1)


def _print_response(response: SyncActionResponse[Any]) -> None:
    colour = "green" if response.success else "red"
    out.print(f"[{colour}]{'OK' if response.success else 'FAILED'}[/{colour}] {response.message}")
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


def main() -> None:  # pragma: no cover - console script entry for `python -m mls_sync`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
