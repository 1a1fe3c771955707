"""`mls-sync worker`: run deferred syncs and the periodic schedule (procrastinate, PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Annotated, Any

import typer

from mls_sync.cli.support import err, fail, load_settings
from mls_sync.config import Settings
from mls_sync.observability import configure_logging
from mls_sync.runtime import open_runtime


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, help="jobs at once in this process (default MLS_SYNC_WORKER_CONCURRENCY, 4)"
        ),
    ] = None,
) -> None:
    """Run the syncs that the API, the cron endpoint and the schedule defer, until SIGTERM.

    Start as many as you like, on as many machines, against the same PostgreSQL: each
    connection is synced by one worker at a time, the schedule fires once per tick, and
    every MLS credential keeps one request budget across all of them."""
    overrides: dict[str, Any] = {"executor": "procrastinate"}  # shared budgets, deferred fan-out
    if concurrency is not None:
        overrides["worker_concurrency"] = concurrency
    settings = load_settings(**overrides)
    if not settings.async_database_url.startswith("postgresql"):
        fail(
            "mls-sync worker needs DATABASE_URL on PostgreSQL (procrastinate keeps its jobs there)"
        )
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        asyncio.run(_run(settings))
    except OSError as exc:
        fail(f"Cannot reach the database: {exc}")
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C before procrastinate took signals
        err.print("worker stopped")


async def _run(settings: Settings) -> None:
    from mls_sync.executors.procrastinate import ProcrastinateExecutor

    async with open_runtime(settings) as runtime:
        executor = runtime.executor
        if not isinstance(executor, ProcrastinateExecutor):  # pragma: no cover - set above
            raise RuntimeError("the worker's runtime must defer through procrastinate")
        await executor.deferrer.app.run_worker_async(
            concurrency=settings.worker_concurrency,
            name=f"{socket.gethostname()}:{os.getpid()}",
            additional_context={"runtime": runtime},
        )
