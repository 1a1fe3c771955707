"""procrastinate's own tables (jobs, workers, periodic defers), beside ours on PostgreSQL.

`mls-sync db upgrade` installs them once; running it again leaves them as they are.
procrastinate ships its schema as one SQL file for a fresh database and numbered migrations
for upgrades between its versions (see procrastinate's docs: `procrastinate schema
--migrations-path`); an upgrade of procrastinate itself applies those by hand.
"""

from __future__ import annotations

from mls_sync.config import Settings
from mls_sync.worker.app import build_app

_PRESENT = "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS present"


async def install_schema(settings: Settings) -> bool:
    """Apply procrastinate's schema unless it is there already; True when it was applied."""
    app = build_app(settings)
    async with app.open_async():
        row = await app.connector.execute_query_one_async(_PRESENT)
        if row["present"]:
            return False
        await app.schema_manager.apply_schema_async()
    return True
