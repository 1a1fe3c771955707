"""Connection leases, on SQL: who syncs a connection right now, and until when.

A lease is one `connection_leases` row. Taking one is a single statement (INSERT, or UPDATE of
a row whose expiry has passed, with ON CONFLICT), so two processes racing for a connection
can never both win, on SQLite and on PostgreSQL alike. A holder renews its lease while it
works; a holder that dies stops renewing, its lease lapses and the next one to ask takes it
over. Renewing and releasing name the holder, so nobody touches a lease that is not theirs.
On DynamoDB the same operations are conditional writes (store/dynamo/leases.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.store.models import ConnectionLease
from mls_sync.store.sql.feeds import IDS_A_QUERY, chunks
from mls_sync.store.sql.upsert import upsert

# Leases per multi-row statement (4 bound values each: far under every database's limit).
_IDS_A_STATEMENT = 500


class SqlLeases:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def take_many(
        self, connection_ids: Collection[str], holder: str, *, now: datetime, ttl: timedelta
    ) -> dict[str, str | None]:
        """Two statements per 500 ids, whatever the number: the rows as they stood, then one
        multi-row INSERT ... ON CONFLICT whose RETURNING names the ids it took (a live lease's
        row is left alone, so it is not returned)."""
        taken: dict[str, str | None] = {}
        for part in chunks(sorted(set(connection_ids)), _IDS_A_STATEMENT):
            taken.update(await self._take_part(part, holder, now, ttl))
        return taken

    async def _take_part(
        self, wanted: Sequence[str], holder: str, now: datetime, ttl: timedelta
    ) -> dict[str, str | None]:
        table = ConnectionLease.metadata.tables[ConnectionLease.__tablename__]
        prior = {
            connection_id: by
            for connection_id, by in await self._session.execute(
                select(table.c.connection_id, table.c.holder).where(
                    table.c.connection_id.in_(wanted)
                )
            )
        }
        rows = [
            {"connection_id": cid, "holder": holder, "acquired_at": now, "expires_at": now + ttl}
            for cid in wanted
        ]
        insert = upsert(self._session, table).values(rows)
        stmt = insert.on_conflict_do_update(
            index_elements=[table.c.connection_id],
            set_={
                "holder": insert.excluded.holder,
                "acquired_at": insert.excluded.acquired_at,
                "expires_at": insert.excluded.expires_at,
            },
            where=table.c.expires_at <= now,
        ).returning(table.c.connection_id, table.c.holder)
        taken = [cid for cid, by in await self._session.execute(stmt) if by == holder]
        return {cid: (None if prior.get(cid) in (None, holder) else prior[cid]) for cid in taken}

    async def take(self, connection_id: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take the connection's lease for `holder` until `now + ttl`: True when it was free (no
        row, or an expired one). One atomic statement, so a concurrent taker sees our row."""
        values = {
            "connection_id": connection_id,
            "holder": holder,
            "acquired_at": now,
            "expires_at": now + ttl,
        }
        insert = upsert(self._session, ConnectionLease).values(**values)
        stmt = insert.on_conflict_do_update(
            index_elements=[ConnectionLease.connection_id],
            set_={
                "holder": insert.excluded.holder,
                "acquired_at": insert.excluded.acquired_at,
                "expires_at": insert.excluded.expires_at,
            },
            where=ConnectionLease.expires_at <= now,
        ).returning(ConnectionLease.holder)
        taken = (await self._session.execute(stmt)).scalar_one_or_none()
        return taken == holder

    async def renew(
        self, connection_id: str, holder: str, *, now: datetime, ttl: timedelta
    ) -> bool:
        """Push the holder's lease out to `now + ttl`; False when it is no longer theirs (it
        lapsed and someone took it over)."""
        stmt = (
            update(ConnectionLease)
            .where(ConnectionLease.connection_id == connection_id, ConnectionLease.holder == holder)
            .values(expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        result = await self._session.execute(stmt)
        return bool(getattr(result, "rowcount", 0) == 1)

    async def release(self, connection_id: str, holder: str) -> None:
        """Give the lease back (a no-op when it is not the holder's any more)."""
        await self._session.execute(
            delete(ConnectionLease)
            .where(ConnectionLease.connection_id == connection_id, ConnectionLease.holder == holder)
            .execution_options(synchronize_session=False)
        )

    async def release_many(self, connection_ids: Collection[str], holder: str) -> None:
        for part in chunks(sorted(set(connection_ids)), IDS_A_QUERY):
            await self._session.execute(
                delete(ConnectionLease)
                .where(ConnectionLease.connection_id.in_(part), ConnectionLease.holder == holder)
                .execution_options(synchronize_session=False)
            )

    async def of(self, connection_id: str) -> ConnectionLease | None:
        """The connection's lease row as stored (expired or not), for tests and diagnostics."""
        return (
            await self._session.execute(
                select(ConnectionLease).where(ConnectionLease.connection_id == connection_id)
            )
        ).scalar_one_or_none()
