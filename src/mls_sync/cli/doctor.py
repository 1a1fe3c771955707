"""`mls-sync doctor`: check a deployment (settings, database, token key, MLS connections,
platform API versions and tokens) and print one line per check; exit 1 when any failed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from mls_sync.cli.support import JsonFlag, out, print_json
from mls_sync.config import Settings
from mls_sync.observability import configure_logging
from mls_sync.services import doctor as service

UserFilter = Annotated[
    str | None,
    typer.Option("--user", "-u", help="check only this user's connections (email or id)"),
]
_STYLE = {
    service.Status.PASS: "green",
    service.Status.WARN: "yellow",
    service.Status.FAIL: "bold red",
}


def _now() -> datetime:
    return datetime.now(UTC)


# Tests replace it to move time (expiring tokens, sunsets) instead of waiting for it.
clock: Callable[[], datetime] = _now


def doctor(user: UserFilter = None, as_json: JsonFlag = False) -> None:
    """Check that this deployment can do its job now: exits 1 when any check fails."""
    # Only warnings and errors on stderr: the report is the output (and --json is parsed).
    configure_logging(level="WARNING", fmt="json" if as_json else "auto")
    checks = asyncio.run(service.diagnose_deployment(Settings, now=clock(), user=user))
    if as_json:
        print_json(service.report(checks))
    else:
        out.print(render(checks))
        out.print(_summary(checks))
    raise typer.Exit(0 if service.is_ok(checks) else 1)


def render(checks: list[service.Check]) -> Table:
    table = Table(title="mls-sync doctor")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail")
    for check in checks:
        # Text, not markup: a detail may quote a server's message with [brackets] in it.
        table.add_row(
            Text(check.name),
            Text(check.status.value, style=_STYLE[check.status]),
            Text(check.detail),
        )
    return table


def _summary(checks: list[service.Check]) -> Text:
    failed = sum(c.status is service.Status.FAIL for c in checks)
    warned = sum(c.status is service.Status.WARN for c in checks)
    if not failed and not warned:
        return Text(f"All {len(checks)} checks passed.", style="green")
    parts = [f"{failed} failed"] if failed else []
    parts += [f"{warned} warning{'s' if warned != 1 else ''}"] if warned else []
    return Text(", ".join(parts) + ".", style="bold red" if failed else "yellow")
