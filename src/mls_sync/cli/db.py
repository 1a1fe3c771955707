"""`mls-sync db upgrade`: the database's schema (migrations, or the DynamoDB tables)."""

from __future__ import annotations

import asyncio

import typer

from mls_sync.cli.support import err, fail_with, load_settings
from mls_sync.config import Settings
from mls_sync.domain.errors import ServiceError
from mls_sync.observability import configure_logging
from mls_sync.services.database import upgrade_schema

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


async def _worker_schema(settings: Settings) -> bool:
    # Imported here: procrastinate is loaded only when a PostgreSQL schema is upgraded.
    from mls_sync.worker.schema import install_schema

    return await install_schema(settings)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the database migrations (SQLite by default, PostgreSQL with DATABASE_URL); on
    PostgreSQL also procrastinate's tables for `mls-sync worker`, once. On DynamoDB
    (DATABASE_URL=dynamodb://PREFIX?...) create the tables that do not exist yet."""
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        report = asyncio.run(upgrade_schema(settings, revision, worker_schema=_worker_schema))
    except ServiceError as exc:
        fail_with(exc)
    if report.on_dynamodb:
        err.print(
            f"DynamoDB tables ready ({report.tables}); "
            f"done now: {', '.join(report.created) or 'nothing'}",
            soft_wrap=True,
        )
        return
    if report.procrastinate_installed:
        err.print("procrastinate schema installed")
    err.print(f"Database at revision [bold]{report.revision}[/bold]")
