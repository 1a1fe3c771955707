"""Helpers for the worker tests: settings on a PostgreSQL database with procrastinate's schema,
worker subprocesses, and reading run rows back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mls_sync.config import Settings
from mls_sync.store.database import Database
from mls_sync.store.models import SyncRun

NEVER = "0 0 1 jan *"  # a schedule that does not fire during a test


def worker_settings(database_url: str, tmp_path: Path, token_key: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "token_keys": token_key,
        "database_url": database_url,
        "executor": "procrastinate",
        "schedule_cron": NEVER,
        "mls_timeout_seconds": 5.0,
        "mls_requests_per_second": 50.0,
        "mls_retry_backoff_seconds": 0.01,
        "worker_heartbeat_seconds": 0.5,
        "worker_stalled_seconds": 2.0,
        "worker_stalled_check_cron": "* * * * * *",  # every second
        "lease_ttl_seconds": 3.0,
        "lease_renew_seconds": 1.0,
        "log_format": "json",
        **changes,
    }
    return Settings(**values)


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment a `mls-sync worker` subprocess reads the same settings from."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLS_SYNC_")}
    env.pop("DATABASE_URL", None)
    names = (
        "data_dir",
        "executor",
        "schedule_cron",
        "mls_timeout_seconds",
        "mls_requests_per_second",
        "mls_retry_backoff_seconds",
        "worker_heartbeat_seconds",
        "worker_stalled_seconds",
        "worker_stalled_check_cron",
        "lease_ttl_seconds",
        "lease_renew_seconds",
        "log_format",
    )
    for name in names:
        env[f"MLS_SYNC_{name.upper()}"] = str(getattr(settings, name))
    env["DATABASE_URL"] = settings.database_url or ""
    env["MLS_SYNC_TOKEN_KEYS"] = (
        settings.token_keys.get_secret_value() if settings.token_keys else ""
    )
    return env


class WorkerProcess:
    """`mls-sync worker` in a subprocess; its output goes to a file for post-mortems."""

    def __init__(self, settings: Settings, log_dir: Path, name: str, concurrency: int = 4) -> None:
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mls_sync.cli", "worker", "--concurrency", str(concurrency)],
            env=worker_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no release of anything (a machine that vanished)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


async def run_row(db: Database, run_id: str) -> SyncRun:
    async with db.transaction() as session:
        run = await session.get(SyncRun, run_id)
        assert run is not None
        return run


async def runs_where(db: Database, *conditions: Any) -> list[SyncRun]:
    async with db.transaction() as session:
        return list((await session.scalars(select(SyncRun).where(*conditions))).all())


async def run_finished(db: Database, run_id: str) -> bool:
    return (await run_row(db, run_id)).state == "finished"
