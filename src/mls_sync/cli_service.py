"""`mls-sync serve` (the HTTP API with its scheduler) and `mls-sync sync all` (for crontab)."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

import typer
import uvicorn
from rich.table import Table

from mls_sync import actions
from mls_sync.cli_support import (
    JsonFlag,
    err,
    load_settings,
    out,
    print_json,
    sync_progress,
    with_runtime,
)
from mls_sync.domain.results import AggregatedResult, SyncActionResponse
from mls_sync.observability import configure_logging
from mls_sync.runtime import Runtime
from mls_sync.store.database import Database
from mls_sync.store.migrate import upgrade
from mls_sync.store.open import open_database


def serve(
    host: Annotated[str | None, typer.Option(help="default MLS_SYNC_API_HOST (127.0.0.1)")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="default MLS_SYNC_API_PORT (8000)")
    ] = None,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="external cron calls the endpoint instead")
    ] = False,
    migrate: Annotated[bool, typer.Option(help="apply database migrations before serving")] = True,
) -> None:
    """Serve the HTTP API and, unless --no-scheduler, sync every connection on schedule."""
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["api_host"] = host
    if port is not None:
        overrides["api_port"] = port
    if no_scheduler:
        overrides["scheduler_enabled"] = False
    settings = load_settings(**overrides)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    if migrate:
        try:
            asyncio.run(_upgrade(settings.async_database_url))
        except OSError as exc:
            err.print(f"[red]Cannot reach the database:[/red] {exc}")
            raise typer.Exit(1) from None
    if settings.cron_secret is None:
        err.print("[yellow]CRON_SECRET is not set: the cron endpoint answers 503[/yellow]")
    from mls_sync.api import create_app

    grace = settings.shutdown_grace_seconds
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        lifespan="on",
        log_level=settings.log_level.lower(),
        # SIGTERM: requests in flight get this long, then the scheduler's run gets as long.
        timeout_graceful_shutdown=math.ceil(grace) if grace > 0 else None,
    )


async def _upgrade(url: str) -> None:
    db = open_database(url)
    try:
        if isinstance(db, Database):
            await upgrade(db)
        else:
            await db.create_tables()
    finally:
        await db.dispose()


def sync_all(as_json: JsonFlag = False) -> None:
    """Sync every active MLS connection of every user (what the cron endpoint does)."""

    async def work(runtime: Runtime) -> SyncActionResponse[AggregatedResult]:
        with sync_progress("Syncing MLS connections", quiet=as_json) as advance:
            return await actions.sync_all_users(
                engine=runtime.engine, trigger="cli", on_connection_done=advance
            )

    response = with_runtime(work, quiet=as_json)
    if as_json:
        print_json(response.to_wire())
    else:
        _print_connections(response)
    raise typer.Exit(0 if response.success else 1)


def _print_connections(response: SyncActionResponse[AggregatedResult]) -> None:
    colour = "green" if response.success else "red"
    out.print(f"[{colour}]{'OK' if response.success else 'FAILED'}[/{colour}] {response.message}")
    if response.data is None or not response.data.connections:
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


def sandbox(
    port: Annotated[
        int, typer.Option(min=1, max=65534, help="RESO port; platforms on port+1")
    ] = 8081,
    listings: Annotated[int, typer.Option(min=0, max=10_000, help="listings to seed")] = 10,
    vendor: Annotated[
        str, typer.Option(help="generic, or mlsgrid (ListingId only, OriginatingSystemName, gzip)")
    ] = "generic",
    no_in: Annotated[bool, typer.Option("--no-in", help="answer 400 to `in (...)`")] = False,
    labels: Annotated[
        bool, typer.Option("--labels", help="StandardStatus as labels ('Active Under Contract')")
    ] = False,
    page_size: Annotated[int, typer.Option(min=1, help="records per page before nextLink")] = 200,
    latency_ms: Annotated[int, typer.Option(min=0, help="added to every MLS answer")] = 0,
    rate_limit: Annotated[
        float | None, typer.Option(min=0.1, help="requests/s per token, then 429")
    ] = None,
    entity_events: Annotated[
        bool, typer.Option("--entity-events", help="serve RESO EntityEvent (RCP-027)")
    ] = False,
) -> None:
    """Run the sandbox MLS and platform servers in the foreground (Ctrl-C stops them)."""
    if vendor not in ("generic", "mlsgrid"):
        raise typer.BadParameter("vendor must be generic or mlsgrid", param_hint="--vendor")
    from mls_sync.sandbox import standalone
    from mls_sync.sandbox.platforms import PlatformSandbox

    def started(mls_url: str, platforms_url: str) -> None:
        tokens = ", ".join(
            f"{p}: {standalone.PLATFORM_TOKEN.format(platform=p)}"
            for p in standalone.SEEDED_PLATFORMS
        )
        out.print(f"Sandbox MLS (RESO Web API) at [bold]{mls_url}[/bold]")
        out.print(f"  bearer token {standalone.MLS_TOKEN}; {listings} listings LK-0001..")
        out.print(
            f"  agents {standalone.AGENT_ID} (odd) and AGENT-2 (even), office "
            f"{standalone.OFFICE_ID}; control API under {mls_url}/_sandbox/"
        )
        out.print(f"Sandbox platforms at [bold]{platforms_url}[/bold]; tokens {tokens}")
        out.print("Point `mls-sync serve` at the sandbox platforms with:")
        for key, value in PlatformSandbox.settings_for(platforms_url).items():
            print(f"export MLS_SYNC_{key.upper()}={value}")

    behaviour = standalone.MlsBehaviour(
        vendor=vendor,
        supports_in=not no_in,
        status_labels=labels,
        max_page_size=page_size,
        latency=latency_ms / 1000,
        rate_limit=rate_limit,
        entity_events=entity_events,
    )
    standalone.run_forever(
        standalone.build_sandbox(listings, behaviour), port=port, on_start=started
    )
