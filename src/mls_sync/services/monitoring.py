"""What the metrics gauges show of the database: connections by state, the outbox's depth and
age. The runtime hands `store_snapshot` over a database to the metrics route as a callback, so
the metrics themselves (observability/metrics.py) never reach the storage."""

from __future__ import annotations

from mls_sync.observability.metrics import StoreSnapshot
from mls_sync.store.interface import Storage
from mls_sync.store.types import utcnow


async def store_snapshot(db: Storage) -> StoreSnapshot:
    async with db.transaction() as uow:
        mls = await uow.connections.state_counts()
        platforms = await uow.platforms.state_counts()
        depth, oldest = await uow.outbox.depth()
    age = max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0
    return StoreSnapshot(mls, platforms, depth, age)
