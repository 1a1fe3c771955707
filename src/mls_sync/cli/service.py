"""`mls-sync serve` (the HTTP API with its scheduler) and `mls-sync sandbox`."""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

import typer
import uvicorn

from mls_sync.cli.support import err, fail_with, load_settings, out
from mls_sync.domain.errors import ServiceError
from mls_sync.observability import configure_logging
from mls_sync.services.database import upgrade_schema


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
            asyncio.run(upgrade_schema(settings))
        except ServiceError as exc:
            fail_with(exc)
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


def sandbox(
    port: Annotated[
        int, typer.Option(min=1, max=65534, help="RESO port; platforms on port+1")
    ] = 8081,
    listings: Annotated[int, typer.Option(min=0, max=10_000, help="listings to seed")] = 10,
    vendor: Annotated[
        str,
        typer.Option(
            help="generic, mlsgrid, bridge, trestle or spark: what that vendor refuses, it refuses"
        ),
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
    from mls_sync.sandbox.reso_vendors import VENDOR_RULES

    if vendor not in VENDOR_RULES:
        raise typer.BadParameter(
            f"vendor must be one of {', '.join(VENDOR_RULES)}", param_hint="--vendor"
        )
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
