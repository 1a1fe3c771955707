"""What every command shares: settings, a runtime per command, one mapping of the services'
typed errors to messages and exit statuses, and output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from mls_sync.config import Settings
from mls_sync.domain.errors import InvalidInput, ServiceError
from mls_sync.observability import configure_logging
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.services import users
from mls_sync.services.records import UnitOfWork, User

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON only.")]
UserOption = Annotated[str, typer.Option("--user", "-u", help="the user's email or id")]

out = Console()
err = Console(stderr=True)


def load_settings(**overrides: Any) -> Settings:
    try:
        settings = Settings()
        return settings.model_copy(update=overrides) if overrides else settings
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        # One line, never wrapped: it may go to a log that is read line by line.
        err.print(f"[red]Invalid configuration[/red] ({where}): {message}", soft_wrap=True)
        raise typer.Exit(2) from None


def with_runtime(work: Callable[[Runtime], Awaitable[T]], *, quiet: bool = True) -> T:
    """Run `work` with a runtime opened from the environment's settings. A service's typed
    error, and a database that is unreachable or not migrated, become one line on stderr and
    exit status 2 (the input was wrong) or 1 (anything else)."""
    settings = load_settings()
    configure_logging(level="WARNING" if quiet else settings.log_level, fmt=settings.log_format)

    async def go() -> T:
        async with open_runtime(settings) as runtime:
            return await work(runtime)

    try:
        return asyncio.run(go())
    except DBAPIError as exc:
        text = str(exc.orig).lower()
        if "no such table" in text or "does not exist" in text:
            fail("The database has no tables yet: run `mls-sync db upgrade` first")
        raise
    except ServiceError as exc:
        fail_with(exc)
    except OSError as exc:
        fail(f"Cannot reach the database: {exc}")
    except Exception as exc:
        # DynamoDB's client errors (no endpoint, no credentials, no permission): one line.
        if type(exc).__module__.startswith(("botocore", "aiobotocore")):
            fail(f"Cannot use DynamoDB: {exc}")
        raise


def for_user(who: str, work: Callable[[Runtime, UnitOfWork, User], Awaitable[T]]) -> T:
    """`work` in one unit of work, for the user `who` names (an id or an email)."""

    async def go(runtime: Runtime) -> T:
        async with runtime.db.transaction() as session:
            return await work(runtime, session, await users.find_user(session, who))

    return with_runtime(go)


def show_for_user(
    who: str,
    fetch: Callable[[UnitOfWork, str], Awaitable[Sequence[Any]]],
    *,
    title: str,
    columns: Sequence[str],
    as_json: bool,
) -> None:
    """The rows `fetch(uow, user_id)` finds for the user `who` names, shown as `show` does."""

    async def work(runtime: Runtime, session: UnitOfWork, owner: User) -> list[dict[str, Any]]:
        return [fields_of(row, columns) for row in await fetch(session, owner.id)]

    show(title, for_user(who, work), columns, as_json)


def list_command(
    app: typer.Typer,
    fetch: Callable[[UnitOfWork, str], Awaitable[Sequence[Any]]],
    *,
    title: str,
    columns: Sequence[str],
    help: str,
) -> None:
    """`mls-sync <group> list --user WHO [--json]`: the rows `fetch` finds for that user."""

    def list_rows(user: UserOption, as_json: JsonFlag = False) -> None:
        show_for_user(user, fetch, title=title, columns=columns, as_json=as_json)

    app.command("list", help=help)(list_rows)


def save_for_user(
    who: str,
    save: Callable[[Runtime, UnitOfWork, str], Awaitable[Any]],
    *,
    title: str,
    columns: Sequence[str],
    as_json: bool,
) -> None:
    """Store what `save(runtime, uow, user_id)` makes for the user `who` names, and show it."""

    async def work(runtime: Runtime, session: UnitOfWork, owner: User) -> dict[str, Any]:
        return fields_of(await save(runtime, session, owner.id), columns)

    show(title, for_user(who, work), columns, as_json)


@contextmanager
def sync_progress(label: str, *, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar on stderr (off with --json or without a terminal); yields the
    `(done, total)` callback the engine and `sync_all_users` report progress through."""
    with Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    ) as bar:
        task = bar.add_task("sync", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, total=total or None, advance=done)  # 0: not known (a load)

        yield advance


def fail_with(error: ServiceError) -> NoReturn:
    """The one place a service's error becomes what the operator reads, and an exit status."""
    if isinstance(error, InvalidInput):
        fail(f"{error.field}: {error.message}", 2)
    fail(error.message)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]{message}[/red]")
    raise typer.Exit(code)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"not JSON: {type(value).__name__}")


def fields_of(row: Any, names: Sequence[str]) -> dict[str, Any]:
    """Public attributes of a stored row, by name (never a secret column)."""
    return {name: getattr(row, name) for name in names}


def show(
    title: str, rows: dict[str, Any] | list[dict[str, Any]], columns: Sequence[str], as_json: bool
) -> None:
    """One row or a list of rows: JSON with --json, else a table of `columns`."""
    if as_json:
        print_json(rows)
    else:
        print_rows(title, [rows] if isinstance(rows, dict) else rows, columns)


def print_rows(title: str, rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)
