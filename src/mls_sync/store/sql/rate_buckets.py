"""MLS request budgets shared by every process, as GCRA rows in PostgreSQL (`rate_buckets`):
each row holds a theoretical arrival time (TAT), moved by one atomic upsert per request, on
the database's clock so that every machine agrees (mls/shared_limits.py decides what to ask)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from mls_sync.store.database import Database
from mls_sync.store.interface import BucketSpacing

_NOW = "extract(epoch FROM clock_timestamp())::float8"

_PAUSE = text(
    "INSERT INTO rate_buckets AS b (key, tat) "
    f"VALUES (CAST(:key AS varchar), {_NOW} + CAST(:seconds AS float8)) "
    "ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, EXCLUDED.tat)"
)


def _take_statement(count: int) -> str:
    """One upsert over `count` buckets; binds k{i} (key), t{i} (T) and u{i} (tau)."""
    values = ", ".join(
        f"(CAST(:k{i} AS varchar), {_NOW} + CAST(:t{i} AS float8))" for i in range(count)
    )

    def per_key(param: str) -> str:
        cases = " ".join(
            f"WHEN CAST(:k{i} AS varchar) THEN CAST(:{param}{i} AS float8)" for i in range(count)
        )
        return f"(CASE b.key {cases} END)"

    return (
        f"INSERT INTO rate_buckets AS b (key, tat) VALUES {values} "
        "ON CONFLICT (key) DO UPDATE "
        f"SET tat = GREATEST(b.tat, {_NOW}) + {per_key('t')} "
        f"WHERE GREATEST(b.tat, {_NOW}) - {per_key('u')} - {_NOW} <= CAST(:max_wait AS float8) "
        f"RETURNING b.key, b.tat, {_NOW} AS now"
    )


class SqlRateBuckets:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def take(
        self, buckets: Sequence[BucketSpacing], *, max_wait: float
    ) -> tuple[dict[str, float], float]:
        params: dict[str, object] = {"max_wait": max_wait}
        for i, (key, interval, tolerance) in enumerate(buckets):
            params |= {f"k{i}": key, f"t{i}": interval, f"u{i}": tolerance}
        async with self._db.engine.begin() as conn:
            rows = (await conn.execute(text(_take_statement(len(buckets))), params)).all()
        now = float(rows[0].now) if rows else 0.0
        return {row.key: float(row.tat) for row in rows}, now

    async def pause(self, key: str, seconds: float) -> None:
        async with self._db.engine.begin() as conn:
            await conn.execute(_PAUSE, {"key": key, "seconds": seconds})
