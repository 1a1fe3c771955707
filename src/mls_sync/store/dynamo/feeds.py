"""MLS feeds and their replicas, on DynamoDB.

A feed is an item like any other: read into the unit of work, written version-checked at its
commit. Its replica rows are not. They are the feed's records as the MLS last said them, a page
of thousands at a time and a whole MLS in all, so they are sent when asked, in unconditional
batches, instead of as version-checked transactions (twice the cost, and 100 items each).

That is safe because the replica can only run ahead of what was done with it: a unit of work
that fails after writing rows leaves the feed's bookmark (or event sequence) where it was, so
the same records are fetched and applied to their holders again, and reconciliation compares
every held listing with the replica. The writes that decide something about a row already
there (touching it, marking it gone) are single conditional updates, so they never undo a
concurrent upsert, nor bring back a row deleted meanwhile.

Rows are read consistently by key; by agent, office or ListingId from an index, which
DynamoDB fills a moment after the write.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from mls_sync.domain.replica import ReplicaRow
from mls_sync.domain.status import ConnectionState
from mls_sync.store.dynamo.codec import Item, columns_of, from_item, iso, s
from mls_sync.store.dynamo.repositories import DynamoMlsConnections, index_items
from mls_sync.store.dynamo.schema import (
    GSI1,
    GSI2,
    GSI3,
    REPLICA_LOOKUPS,
    TYPE_FEEDS,
    replica_key,
    replica_keys,
    replica_lookup,
)
from mls_sync.store.dynamo.session import DynamoSession, each
from mls_sync.store.models import FeedRecord, MlsFeed

_ROWS = "pk = :pk AND begins_with(sk, :prefix)"
# A row left the feed: not seen by the pull that began at :since, nor changed since then.
_UNSEEN = (
    "#seen < :since AND #gone = :no AND (attribute_not_exists(#modified) OR #modified < :since)"
)
_UNSEEN_NAMES = {"#seen": "seen_at", "#gone": "gone", "#modified": "modification_timestamp"}


def _refused(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoFeeds:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def all(self, *, owner_user_id: str | None = None) -> Sequence[MlsFeed]:
        if owner_user_id is None:
            items = await index_items(self._session, GSI3, TYPE_FEEDS, "FEED#")
        else:
            items = await index_items(self._session, GSI1, f"USER#{owner_user_id}", "FEED#")
        return self._session.adopt_all(MlsFeed, items)

    async def active_ids(self) -> list[str]:
        items = await index_items(
            self._session, GSI2, f"FEEDSTATE#{ConnectionState.ACTIVE}", "FEED#"
        )
        feeds = self._session.adopt_all(MlsFeed, items)
        # The index says what was committed; a feed marked in this unit of work is as marked.
        return [feed.id for feed in feeds if feed.state == ConnectionState.ACTIVE]

    async def with_ids(self, feed_ids: Collection[str]) -> Sequence[MlsFeed]:
        found = [await self._session.get(MlsFeed, feed_id) for feed_id in sorted(set(feed_ids))]
        return [feed for feed in found if feed is not None]

    async def ran(self, feed_id: str, at: datetime) -> None:
        feed = await self._session.get(MlsFeed, feed_id)
        if feed is not None:  # written, version-checked, at the commit
            feed.last_run_at = at

    async def delete(self, feed_id: str) -> None:
        """The members (with their listings, history, posts and jobs) and the feed go with the
        unit of work; the replica after it commits: rows without a feed are only dead weight
        until the next delete, a feed without its rows would be a wrong replica."""
        connections = DynamoMlsConnections(self._session)
        for member in await connections.of_feed(feed_id):
            await connections.delete(member.id)
        feed = await self._session.get(MlsFeed, feed_id)
        if feed is not None:
            await self._session.delete(feed)

        async def clear_replica() -> None:
            await DynamoReplica(self._session).clear(feed_id)

        self._session.after_commit(clear_replica)


class DynamoReplica:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def upsert(self, feed_id: str, rows: Sequence[ReplicaRow], *, seen_at: datetime) -> None:
        latest = {row.listing_key: row for row in rows}  # a page may repeat a key
        records = (
            FeedRecord(**asdict(row), feed_id=feed_id, seen_at=seen_at) for row in latest.values()
        )
        await self._session.batch_write([{"PutRequest": {"Item": _item(r)}} for r in records])

    async def of_keys(self, feed_id: str, keys: Collection[str]) -> dict[str, FeedRecord]:
        items = await self._session.batch_get(replica_key(feed_id, key) for key in sorted(keys))
        records = (from_item(FeedRecord, item) for item in items)
        return {record.listing_key: record for record in records}

    async def find(
        self,
        feed_id: str,
        *,
        listing_key: str | None = None,
        listing_id: str | None = None,
        agent_mls_id: str | None = None,
        office_mls_id: str | None = None,
    ) -> Sequence[FeedRecord]:
        criteria = {
            "listing_key": listing_key,
            "listing_id": listing_id,
            "list_agent_mls_id": agent_mls_id,
            "list_office_mls_id": office_mls_id,
        }
        given = {column: value for column, value in criteria.items() if value is not None}
        records = [from_item(FeedRecord, item) for item in await self._candidates(feed_id, given)]
        found = [r for r in records if all(getattr(r, c) == v for c, v in given.items())]
        return sorted(found, key=lambda r: r.listing_key)

    async def _candidates(self, feed_id: str, given: dict[str, str]) -> list[Item]:
        """The rows one read can narrow the criteria to: by key, else the most selective
        index given, else the feed's whole replica."""
        if "listing_key" in given:
            return await self._session.batch_get([replica_key(feed_id, given["listing_key"])])
        for column, index in REPLICA_LOOKUPS.items():
            if column in given:
                return await index_items(
                    self._session, index, replica_lookup(feed_id, column, given[column])
                )
        return await self._rows(feed_id)

    async def touch(self, feed_id: str, keys: Collection[str], *, seen_at: datetime) -> None:
        client, table = self._session.client, self._session.tables.data_table

        async def touch_one(key: str) -> None:
            pk, sk = replica_key(feed_id, key)
            try:
                await client.update_item(
                    TableName=table,
                    Key={"pk": s(pk), "sk": s(sk)},
                    UpdateExpression="SET #seen = :seen",
                    ConditionExpression="attribute_exists(pk)",  # not in the replica: no row
                    ExpressionAttributeNames={"#seen": "seen_at"},
                    ExpressionAttributeValues={":seen": s(iso(seen_at))},
                )
            except ClientError as exc:
                if not _refused(exc):
                    raise

        await each(sorted(set(keys)), touch_one)

    async def mark_gone_unseen(self, feed_id: str, *, since: datetime) -> list[str]:
        values = {":since": s(iso(since)), ":no": {"BOOL": False}}
        unseen = await self._rows(
            feed_id,
            filter_expression=_UNSEEN,
            names=_UNSEEN_NAMES,
            values=values,
            projection="pk, sk, listing_key",
        )
        client, table = self._session.client, self._session.tables.data_table

        async def mark(item: Item) -> str | None:
            """The row's key, unless an upsert saw it since the query (then it stays)."""
            try:
                await client.update_item(
                    TableName=table,
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET #gone = :yes",
                    ConditionExpression=f"attribute_exists(pk) AND {_UNSEEN}",
                    ExpressionAttributeNames=_UNSEEN_NAMES,
                    ExpressionAttributeValues={**values, ":yes": {"BOOL": True}},
                )
            except ClientError as exc:
                if _refused(exc):
                    return None
                raise
            return str(item["listing_key"]["S"])

        return [key for key in await each(unseen, mark) if key is not None]

    async def count(self, feed_id: str) -> int:
        pk, _ = replica_key(feed_id, "")
        return await self._session.count(_ROWS, {":pk": s(pk), ":prefix": s("REC#")})

    async def clear(self, feed_id: str) -> None:
        """Every row of the feed's replica, gone (the feed was deleted)."""
        rows = await self._rows(feed_id, projection="pk, sk")
        await self._session.batch_write(
            [{"DeleteRequest": {"Key": {"pk": r["pk"], "sk": r["sk"]}}} for r in rows]
        )

    async def _rows(
        self,
        feed_id: str,
        *,
        filter_expression: str | None = None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        projection: str | None = None,
    ) -> list[Item]:
        """The feed's replica rows (those matching the filter), by ListingKey."""
        pk, prefix = replica_key(feed_id, "")
        return await self._session.query(
            _ROWS,
            {":pk": s(pk), ":prefix": s(prefix), **(values or {})},
            filter_expression=filter_expression,
            names=names,
            projection=projection,
        )


def _item(record: FeedRecord) -> Item:
    """The row's columns and keys; no `version`: rows are never part of a unit of work."""
    return {**columns_of(record), **{name: s(key) for name, key in replica_keys(record).items()}}
