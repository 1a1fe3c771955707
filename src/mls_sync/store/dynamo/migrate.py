"""Items written before MLS feeds, brought to today's layout: on DynamoDB, what Alembic revision
0005 (store/migrations/versions/0005_mls_feeds.py) does on SQL. Run by `mls-sync db upgrade`
(`DynamoDatabase.create_tables`), after the data table has its indexes.

- An MLS connection without a feed becomes a private feed of its owner with the same id (its
  profile, credentials, overrides, state and name; `last_run_at` its `last_sync_at`; cadence
  900). The bookmark is not copied, so the feed loads once, as on SQL. The connection becomes
  its membership (`feed_id` = its id), written in today's shape: the attributes the feed took
  over are gone. The feed and the connection go in one transaction: a feed exists exactly
  when a connection names it, so a run stopped halfway leaves nothing half done.
- A listing without a feed gets its connection's (`feed_id` = `mls_connection_id`), and with
  it the feed's index keys (gsi3). Nothing else about it changes (`updated_at` neither).
- Any other item whose index keys are not the ones `keys_of` gives it today is written again
  with them: users and platform connections made before feeds are not in the `TYPE#...`
  partitions that list them (`users.all()`, the platform gauges).

Each item is rewritten from its columns with the codec and `keys_of`, as a unit of work's
commit writes it (session.py): in `TransactWriteItems` of up to 100, conditioned on the version
read, and the version goes up by one. A concurrent writer makes the upgrade stop with a
`Conflict`; running it again finishes the rest (what was done is not done twice).

This is the one read of the whole table (a Scan, page by page, of the items named by type; a
one-off). When it has gone through, a marker item says so, and later upgrades (every
`mls-sync serve` start) read that one item instead: the table then holds every feed's replica.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from mls_sync.domain.errors import Conflict
from mls_sync.store.dynamo.codec import Item, columns_of, from_item, iso, n, parse_iso, s
from mls_sync.store.dynamo.schema import INDEXES, TYPES, keys_of
from mls_sync.store.dynamo.session import BATCH, each
from mls_sync.store.models import (
    Base,
    Listing,
    MlsConnection,
    MlsFeed,
    PlatformConnection,
    Post,
    SyncRun,
    UnpublishJob,
    User,
)
from mls_sync.store.types import utcnow

# Written when the whole table has been migrated (or was made by this code): its sort key
# starts with "#" like a model item's, and names no model, so the Scan passes it by.
MARKER: Item = {"pk": s("MIGRATION#mls-feeds"), "sk": s("#MIGRATION")}
# Revision 0005's cadence for a migrated feed (the default of services/feeds.py).
_CADENCE_SECONDS = 900
# The item's table and index keys: what `keys_of` gives each model.
_KEYS = ("pk", "sk", *(f"{index}{part}" for index in INDEXES for part in ("pk", "sk")))
# A model item's sort key is "#TYPE" (schema.primary_key); status history and replica rows
# ("HISTORY#...", "REC#...") have nothing to migrate and are left out by the Scan's filter.
_MODELS: dict[str, type[Base]] = {f"#{kind}": model for model, kind in TYPES.items()}
_NOUNS: dict[type[Base], tuple[str, str]] = {
    User: ("user", "users"),
    MlsFeed: ("MLS feed", "MLS feeds"),
    MlsConnection: ("MLS connection", "MLS connections"),
    Listing: ("listing", "listings"),
    PlatformConnection: ("platform connection", "platform connections"),
    Post: ("post", "posts"),
    UnpublishJob: ("unpublish job", "unpublish jobs"),
    SyncRun: ("sync run", "sync runs"),
}
_MADE_FEEDS = ("MLS connection made a private feed", "MLS connections made private feeds")
_GIVEN_FEEDS = ("listing put in its connection's feed", "listings put in their connection's feed")


async def migrate_to_feeds(client: Any, table: str, *, new_table: bool) -> list[str]:
    """Bring the data table's items to today's layout, once; what was done, as
    `create_tables` says it ("PREFIX-data (2 MLS connections made private feeds)"), none when
    run again. `new_table`: the table was created just now, so there is nothing to migrate."""
    if new_table:
        await _mark_done(client, table)
        return []
    if await _done(client, table):
        return []
    migration = _Migration(client, table)
    await migration.run()
    await _mark_done(client, table)
    return migration.report()


async def _done(client: Any, table: str) -> bool:
    response = await client.get_item(TableName=table, Key=MARKER, ConsistentRead=True)
    return "Item" in response


async def _mark_done(client: Any, table: str) -> None:
    await client.put_item(TableName=table, Item={**MARKER, "done_at": s(iso(utcnow()))})


class _Migration:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table
        self.made_feeds = 0
        self.given_feeds = 0
        self.indexed: Counter[type[Base]] = Counter()

    async def run(self) -> None:
        """Page by page: each page's rewrites are sent before the next page is read."""
        paginator = self.client.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self.table,
            ConsistentRead=True,  # what a previous upgrade wrote is seen as written
            FilterExpression="begins_with(sk, :model)",
            ExpressionAttributeValues={":model": s("#")},
        )
        async for page in pages:
            groups = [group for item in page.get("Items", []) if (group := self._rewrite(item))]
            await self._send(groups)

    def _rewrite(self, item: Item) -> list[dict[str, Any]]:
        """The writes that bring one item to today's layout, to be sent in one transaction
        (none when it is there already)."""
        model = _MODELS.get(item["sk"]["S"])
        if model is None:
            return []  # the marker
        obj = from_item(model, item)
        if isinstance(obj, MlsConnection) and obj.feed_id is None:
            feed = _private_feed(obj, item)
            obj.feed_id = feed.id
            self.made_feeds += 1
            return [self._create(feed), self._replace(obj, item)]
        if isinstance(obj, Listing) and obj.feed_id is None:
            obj.feed_id = obj.mls_connection_id
            self.given_feeds += 1
            return [self._replace(obj, item)]
        if _keys_of_item(item) != keys_of(obj):
            self.indexed[model] += 1
            return [self._replace(obj, item)]
        return []

    def _create(self, obj: Base) -> dict[str, Any]:
        put = {
            "TableName": self.table,
            "Item": _item(obj, version=1),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        return {"Put": put}

    def _replace(self, obj: Base, read: Item) -> dict[str, Any]:
        """The item as today's code writes it, if it is still at the version read."""
        put: dict[str, Any] = {"TableName": self.table}
        if "version" in read:
            put["Item"] = _item(obj, version=int(read["version"]["N"]) + 1)
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": read["version"]}
        else:
            put["Item"] = _item(obj, version=1)
            put["ConditionExpression"] = "attribute_exists(pk) AND attribute_not_exists(version)"
        return {"Put": put}

    async def _send(self, groups: Sequence[list[dict[str, Any]]]) -> None:
        """Transactions of up to 100 writes, a group never split between two."""
        batches: list[list[dict[str, Any]]] = []
        for group in groups:
            if not batches or len(batches[-1]) + len(group) > BATCH:
                batches.append([])
            batches[-1].extend(group)
        await each(batches, self._transact)

    async def _transact(self, batch: list[dict[str, Any]]) -> None:
        try:
            await self.client.transact_write_items(TransactItems=batch)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            raise Conflict(
                f"{self.table} was written during the upgrade: stop every process that"
                " writes and run `mls-sync db upgrade` again (what is done stays done)"
            ) from exc

    def report(self) -> list[str]:
        lines = [(self.made_feeds, *_MADE_FEEDS), (self.given_feeds, *_GIVEN_FEEDS)]
        for model, (one, many) in _NOUNS.items():
            lines.append((self.indexed[model], f"{one} indexed", f"{many} indexed"))
        return [
            f"{self.table} ({count} {one if count == 1 else many})"
            for count, one, many in lines
            if count
        ]


def _private_feed(connection: MlsConnection, item: Item) -> MlsFeed:
    """The connection's private feed, as revision 0005 makes it from the connection's row."""
    old = from_item(MlsFeed, item)  # the columns the feed took over keep their names
    return MlsFeed(
        id=connection.id,
        owner_user_id=connection.user_id,
        name=connection.name,
        provider=old.provider,
        base_url=old.base_url,
        auth_kind=old.auth_kind,
        credentials_encrypted=old.credentials_encrypted,
        key_field=old.key_field,
        filter_style=old.filter_style,
        status_overrides=old.status_overrides or {},
        profile_overrides=old.profile_overrides or {},
        state=connection.state,
        state_message=connection.state_message,
        cadence_seconds=_CADENCE_SECONDS,
        bookmark_timestamp=None,
        bookmark_keys=[],
        loaded_at=None,
        reconciled_at=None,
        entity_event_sequence=None,
        last_run_at=_last_sync_at(item),
        created_at=connection.created_at,
    )


def _last_sync_at(item: Item) -> datetime | None:
    """The connection item's `last_sync_at`, which the model no longer has (revision 0006:
    a member's last sync is its feed's last run)."""
    raw = item.get("last_sync_at")
    return None if raw is None or "NULL" in raw else parse_iso(raw["S"])


def _keys_of_item(item: Item) -> dict[str, str]:
    return {name: item[name]["S"] for name in _KEYS if name in item}


def _item(obj: Base, *, version: int) -> Item:
    """Its columns, version and keys: the item a unit of work's commit writes."""
    keys = {name: s(value) for name, value in keys_of(obj).items()}
    return {**columns_of(obj), "version": n(version), **keys}
