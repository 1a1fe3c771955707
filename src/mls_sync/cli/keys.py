"""`mls-sync keys`: token encryption keys (generate one, rotate every stored secret to the
newest)."""

from __future__ import annotations

import typer

from mls_sync.cli.support import err, out, with_runtime
from mls_sync.runtime import Runtime
from mls_sync.services import keys

keys_app = typer.Typer(help="Token encryption keys (MLS_SYNC_TOKEN_KEYS).", no_args_is_help=True)


@keys_app.command("generate")
def generate() -> None:
    """Print a new Fernet key, to put first in MLS_SYNC_TOKEN_KEYS."""
    out.print(keys.new_key(), highlight=False)


@keys_app.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret with the first key of MLS_SYNC_TOKEN_KEYS.

    Put the new key first and keep the old ones, run this, then remove the old keys."""

    async def work(runtime: Runtime) -> keys.RotationReport:
        return await keys.rotate(runtime.db, runtime.cipher)

    report = with_runtime(work)
    err.print(
        f"Re-encrypted {report.secrets} secrets in {report.rows} rows with the newest key; "
        "the older keys can now be removed from MLS_SYNC_TOKEN_KEYS"
    )
