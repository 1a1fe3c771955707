"""MLS feeds and their replicas, on SQL."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.domain.replica import ReplicaRow
from mls_sync.domain.status import ConnectionState
from mls_sync.store.models import FeedRecord, MlsFeed
from mls_sync.store.sql.upsert import upsert

# Rows per executemany batch (bounded memory per call).
_ROWS_A_STATEMENT = 1000
# What an upsert replaces: everything but the key.
_REPLACED = (
    "listing_id",
    "standard_status",
    "mls_status",
    "modification_timestamp",
    "list_agent_mls_id",
    "list_office_mls_id",
    "gone",
    "seen_at",
)
# Keys per IN (...): well under every database's limit on bound values.
_KEYS_A_QUERY = 500


# Ids in one `IN (...)`: well under SQLite's 32,766 bound parameters and PostgreSQL's 65,535.
IDS_A_QUERY = 500


def chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


class SqlFeeds:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def all(self, *, owner_user_id: str | None = None) -> Sequence[MlsFeed]:
        stmt = select(MlsFeed).order_by(MlsFeed.created_at, MlsFeed.id)
        if owner_user_id is not None:
            stmt = stmt.where(MlsFeed.owner_user_id == owner_user_id)
        return (await self._session.execute(stmt)).scalars().all()

    async def active_ids(self) -> list[str]:
        stmt = (
            select(MlsFeed.id)
            .where(MlsFeed.state == ConnectionState.ACTIVE)
            .order_by(MlsFeed.created_at, MlsFeed.id)
        )
        return list((await self._session.execute(stmt)).scalars().all())

    async def with_ids(self, feed_ids: Collection[str]) -> Sequence[MlsFeed]:
        found: list[MlsFeed] = []
        for part in chunks(sorted(set(feed_ids)), IDS_A_QUERY):
            found.extend(
                (await self._session.execute(select(MlsFeed).where(MlsFeed.id.in_(part)))).scalars()
            )
        return found

    async def ran(self, feed_id: str, at: datetime) -> None:
        await self._session.execute(
            update(MlsFeed)
            .where(MlsFeed.id == feed_id)
            .values(last_run_at=at)
            .execution_options(synchronize_session=False)
        )

    async def delete(self, feed_id: str) -> None:
        # ON DELETE CASCADE removes the replica, the memberships and their listings.
        await self._session.execute(delete(MlsFeed).where(MlsFeed.id == feed_id))


class SqlReplica:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def upsert(self, feed_id: str, rows: Sequence[ReplicaRow], *, seen_at: datetime) -> None:
        if not rows:
            return
        latest = {row.listing_key: row for row in rows}  # a page may repeat a key
        values = [
            {
                "feed_id": feed_id,
                "listing_key": row.listing_key,
                "listing_id": row.listing_id,
                "standard_status": row.standard_status,
                "mls_status": row.mls_status,
                "modification_timestamp": row.modification_timestamp,
                "list_agent_mls_id": row.list_agent_mls_id,
                "list_office_mls_id": row.list_office_mls_id,
                "gone": row.gone,
                "seen_at": seen_at,
            }
            for row in latest.values()
        ]
        # The table, not the mapped class: an ORM bulk insert groups rows by which of their
        # fields are None and runs each run of alike rows as its own executemany, so a page
        # whose records leave ListOfficeMlsId or MlsStatus empty here and there became
        # thousands of statements of a few rows (13 of a 100,000-record load's 21 seconds).
        table = FeedRecord.metadata.tables[FeedRecord.__tablename__]
        insert = upsert(self._session, table)
        # One statement, the rows as its parameters (executemany): a 5,000-record page is
        # one round of the driver, not 5,000 ORM objects or a statement built per chunk.
        stmt = insert.on_conflict_do_update(
            index_elements=["feed_id", "listing_key"],
            set_={name: insert.excluded[name] for name in _REPLACED},
        )
        for part in chunks(values, _ROWS_A_STATEMENT):
            await self._session.execute(stmt, list(part))

    async def of_keys(self, feed_id: str, keys: Collection[str]) -> dict[str, FeedRecord]:
        found: dict[str, FeedRecord] = {}
        for part in chunks(sorted(set(keys)), _KEYS_A_QUERY):
            stmt = select(FeedRecord).where(
                FeedRecord.feed_id == feed_id, FeedRecord.listing_key.in_(part)
            )
            found.update((r.listing_key, r) for r in (await self._session.execute(stmt)).scalars())
        return found

    async def find(
        self,
        feed_id: str,
        *,
        listing_key: str | None = None,
        listing_id: str | None = None,
        agent_mls_id: str | None = None,
        office_mls_id: str | None = None,
    ) -> Sequence[FeedRecord]:
        stmt = select(FeedRecord).where(FeedRecord.feed_id == feed_id)
        criteria = {
            FeedRecord.listing_key: listing_key,
            FeedRecord.listing_id: listing_id,
            FeedRecord.list_agent_mls_id: agent_mls_id,
            FeedRecord.list_office_mls_id: office_mls_id,
        }
        for column, value in criteria.items():
            if value is not None:
                stmt = stmt.where(column == value)
        stmt = stmt.order_by(FeedRecord.listing_key)
        return (await self._session.execute(stmt)).scalars().all()

    async def touch(self, feed_id: str, keys: Collection[str], *, seen_at: datetime) -> None:
        for part in chunks(sorted(set(keys)), _KEYS_A_QUERY):
            await self._session.execute(
                update(FeedRecord)
                .where(FeedRecord.feed_id == feed_id, FeedRecord.listing_key.in_(part))
                .values(seen_at=seen_at)
            )

    async def mark_gone_unseen(self, feed_id: str, *, since: datetime) -> list[str]:
        unseen = (
            FeedRecord.feed_id == feed_id,
            FeedRecord.seen_at < since,
            FeedRecord.gone.is_(False),
            or_(
                FeedRecord.modification_timestamp.is_(None),
                FeedRecord.modification_timestamp < since,
            ),
        )
        keys = list(
            (await self._session.execute(select(FeedRecord.listing_key).where(*unseen))).scalars()
        )
        if keys:
            await self._session.execute(update(FeedRecord).where(*unseen).values(gone=True))
        return keys

    async def count(self, feed_id: str) -> int:
        stmt = select(func.count()).select_from(FeedRecord).where(FeedRecord.feed_id == feed_id)
        return int((await self._session.execute(stmt)).scalar_one())
