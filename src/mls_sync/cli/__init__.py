"""The `mls-sync` command line (Typer + Rich): one module per command group. Each command
parses its input, calls one service (the sync commands: `actions`), and prints the answer."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.table import Table

from mls_sync.cli import bench, doctor, keys, runs, service, worker
from mls_sync.cli.connections import connections_app
from mls_sync.cli.db import db_app
from mls_sync.cli.feeds import feeds_app
from mls_sync.cli.listings import listings_app
from mls_sync.cli.platforms import platforms_app
from mls_sync.cli.posts import posts_app
from mls_sync.cli.support import out
from mls_sync.cli.sync import print_response, sync_app
from mls_sync.cli.users import users_app
from mls_sync.observability import configure_logging

app = typer.Typer(
    help="Keep listings in step with their MLS.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
)
app.add_typer(sync_app, name="sync")
app.add_typer(db_app, name="db")
app.command("serve")(service.serve)
app.command("sandbox")(service.sandbox)
app.command("bench")(bench.bench)
app.command("worker")(worker.worker)
app.add_typer(users_app, name="users")
app.add_typer(feeds_app, name="feeds")
app.add_typer(connections_app, name="connections")
app.add_typer(platforms_app, name="platforms")
app.add_typer(listings_app, name="listings")
app.add_typer(posts_app, name="posts")
app.add_typer(runs.runs_app, name="runs")
app.add_typer(keys.keys_app, name="keys")
app.command("doctor")(doctor.doctor)

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
        print_response(report.response)
        posts = Table(title="Posts of sold listings", show_lines=False)
        for column in ("MLS #", "platform", "post status", "note"):
            posts.add_column(column)
        for mls_number, platform, status, note in report.posts:
            style = "green" if status == "unpublished" else "yellow"
            posts.add_row(mls_number, platform, f"[{style}]{status}[/{style}]", note or "")
        out.print(posts)
    raise typer.Exit(0 if report.response.success else 1)


def main() -> None:  # pragma: no cover - `python -m mls_sync.cli` (cli/__main__.py)
    app()
