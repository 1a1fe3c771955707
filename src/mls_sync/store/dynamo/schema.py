"""The table layout (README "DynamoDB tables", deploy/aws/template.yaml) and `create_tables`.

`PREFIX-data` is a single table: every row of every model is one item whose `pk`/`sk` name
the model and id (so `session.get(Model, id)` is one GetItem), and whose `gsi1`/`gsi2`/`gsi3`
keys serve the repository's queries: listings by connection, posts by listing, outbox jobs by
due time, a user's connections, runs newest first, a feed's members and the listings held in
it. `PREFIX-coordination` holds connection leases, written only with conditional writes.

A feed's replica rows live in the feed's own partition (`FEED#id`, beside the feed's item), so
counting, reconciling or deleting a replica reads one partition. They are the table's bulk (a
whole MLS per feed), which is why no list reads the table with a Scan: every model's listing
is an index partition (`TYPE#...`, or the state partitions) that holds nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from mls_sync.store.dynamo.codec import iso
from mls_sync.store.models import (
    Base,
    FeedRecord,
    Listing,
    ListingStatusHistory,
    MlsConnection,
    MlsFeed,
    PlatformConnection,
    Post,
    SyncRun,
    UnpublishJob,
    User,
)

GSI1 = "gsi1"
GSI2 = "gsi2"
GSI3 = "gsi3"
INDEXES = (GSI1, GSI2, GSI3)
# How long `db upgrade` waits for an index added to an existing table to be filled.
_INDEX_WAIT_SECONDS = 1800
OUTBOX = "OUTBOX"
ALL_RUNS = "RUNS#ALL"
# Index partitions that list every item of a type (management listings, gauges, token care).
TYPE_USERS = "TYPE#USER"
TYPE_FEEDS = "TYPE#FEED"
TYPE_PLATFORMS = "TYPE#PLATFORM"

# Each model's item type: `pk` is TYPE#id and `sk` is #TYPE, except status history, which
# lives in its listing's partition (read as one Query, oldest first), and replica rows, in
# their feed's (`replica_key`).
TYPES: dict[type[Base], str] = {
    User: "USER",
    MlsFeed: "FEED",
    MlsConnection: "CONN",
    Listing: "LISTING",
    PlatformConnection: "PLATFORM",
    Post: "POST",
    UnpublishJob: "JOB",
    SyncRun: "RUN",
}


def primary_key(model: type[Base], ident: Any) -> tuple[str, str]:
    kind = TYPES[model]
    return f"{kind}#{ident}", f"#{kind}"


def history_key(listing_id: str, history_id: int) -> tuple[str, str]:
    return f"LISTING#{listing_id}", f"HISTORY#{history_id:020d}"


def replica_key(feed_id: str, listing_key: str) -> tuple[str, str]:
    """A replica row's key: in its feed's partition, by ListingKey."""
    return f"FEED#{feed_id}", f"REC#{listing_key}"


# The replica's lookups (the importer's): a column, and the index whose partitions hold one
# feed's rows with one value of it, in ListingKey order. The most selective first.
REPLICA_LOOKUPS: dict[str, str] = {
    "listing_id": GSI3,
    "list_agent_mls_id": GSI1,
    "list_office_mls_id": GSI2,
}


def replica_lookup(feed_id: str, column: str, value: str) -> str:
    """The index partition of the feed's rows whose `column` is `value`."""
    return f"REC#{feed_id}#{column}#{value}"


def replica_keys(row: FeedRecord) -> dict[str, str]:
    """A replica row's table and index keys (a None column leaves the row out of its index)."""
    pk, sk = replica_key(row.feed_id, row.listing_key)
    keys = {"pk": pk, "sk": sk}
    for column, index in REPLICA_LOOKUPS.items():
        value = getattr(row, column)
        if value is not None:
            keys[f"{index}pk"] = replica_lookup(row.feed_id, column, value)
            keys[f"{index}sk"] = sk
    return keys


def _user(o: User) -> dict[str, str | None]:
    return {
        "gsi1pk": f"EMAIL#{o.email}",
        "gsi1sk": "#USER",
        "gsi2pk": f"APIKEY#{o.api_key_hash}" if o.api_key_hash else None,
        "gsi2sk": "#USER" if o.api_key_hash else None,
        "gsi3pk": TYPE_USERS,
        "gsi3sk": f"USER#{iso(o.created_at)}#{o.id}",
    }


def _feed(o: MlsFeed) -> dict[str, str | None]:
    order = f"FEED#{iso(o.created_at)}#{o.id}"
    return {
        "gsi1pk": f"USER#{o.owner_user_id}" if o.owner_user_id else None,
        "gsi1sk": order if o.owner_user_id else None,
        "gsi2pk": f"FEEDSTATE#{o.state}",
        "gsi2sk": order,
        "gsi3pk": TYPE_FEEDS,
        "gsi3sk": order,
    }


def _connection(o: MlsConnection) -> dict[str, str | None]:
    order = f"CONN#{iso(o.created_at)}#{o.id}"
    return {
        "gsi1pk": f"USER#{o.user_id}",
        "gsi1sk": order,
        "gsi2pk": f"CONNSTATE#{o.state}",
        "gsi2sk": order,
        "gsi3pk": f"FEED#{o.feed_id}",
        "gsi3sk": order,
    }


def _listing(o: Listing) -> dict[str, str | None]:
    return {
        "gsi1pk": f"CONN#{o.mls_connection_id}",
        "gsi1sk": f"LISTING#{o.listing_key}",
        "gsi2pk": f"USER#{o.user_id}",
        "gsi2sk": f"LISTING#{iso(o.created_at)}#{o.id}",
        # Every holder of a ListingKey in the feed is one exact-match query (the fan-out).
        "gsi3pk": f"FEED#{o.feed_id}",
        "gsi3sk": f"LISTING#{o.listing_key}",
    }


def _platform(o: PlatformConnection) -> dict[str, str | None]:
    return {
        "gsi1pk": f"USER#{o.user_id}",
        "gsi1sk": f"PLATFORM#{o.platform}",
        "gsi2pk": TYPE_PLATFORMS,
        "gsi2sk": f"PLATFORM#{o.id}",
    }


def _post(o: Post) -> dict[str, str | None]:
    return {"gsi1pk": f"LISTING#{o.listing_id}", "gsi1sk": f"POST#{iso(o.created_at)}#{o.id}"}


def job_due(job_id: str, next_attempt_at: datetime) -> str:
    """A job's place in the outbox: by due time."""
    return f"{iso(next_attempt_at)}#{job_id}"


def claims_of(holder: str) -> str:
    """The index partition of the jobs a drain holds claimed (released when it dies)."""
    return f"CLAIMS#{holder}"


def _job(o: UnpublishJob) -> dict[str, str | None]:
    return {
        "gsi1pk": OUTBOX,
        "gsi1sk": job_due(o.id, o.next_attempt_at),
        "gsi2pk": f"JOBPOST#{o.post_id}",
        "gsi2sk": "#JOB",
        "gsi3pk": claims_of(o.claimed_by) if o.claimed_by else None,
        "gsi3sk": f"JOB#{o.id}" if o.claimed_by else None,
    }


def _run(o: SyncRun) -> dict[str, str | None]:
    order = f"{iso(o.started_at)}#{o.id}"
    return {
        "gsi1pk": ALL_RUNS,
        "gsi1sk": order,
        "gsi2pk": f"RUNS#{o.user_id}" if o.user_id else None,
        "gsi2sk": order if o.user_id else None,
    }


_INDEX_KEYS: dict[type[Base], Callable[[Any], dict[str, str | None]]] = {
    User: _user,
    MlsFeed: _feed,
    MlsConnection: _connection,
    Listing: _listing,
    PlatformConnection: _platform,
    Post: _post,
    UnpublishJob: _job,
    SyncRun: _run,
}


def keys_of(obj: Base) -> dict[str, str]:
    """The item's table and index keys (an index key left out keeps it out of that index)."""
    if isinstance(obj, ListingStatusHistory):
        pk, sk = history_key(obj.listing_id, obj.id)
        return {"pk": pk, "sk": sk}
    model = type(obj)
    if model not in TYPES:
        raise TypeError(f"{model.__name__} is not stored in DynamoDB's data table")
    ident = getattr(obj, "id", None)  # every model in TYPES has a string id
    if not isinstance(ident, str):
        raise TypeError(f"{model.__name__} has no id yet")
    pk, sk = primary_key(model, ident)
    keys = {"pk": pk, "sk": sk}
    keys.update({k: v for k, v in _INDEX_KEYS[model](obj).items() if v is not None})
    return keys


def _string_attributes(*names: str) -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": "S"} for name in names]


def _key(hash_name: str, range_name: str | None = None) -> list[dict[str, str]]:
    schema = [{"AttributeName": hash_name, "KeyType": "HASH"}]
    if range_name:
        schema.append({"AttributeName": range_name, "KeyType": "RANGE"})
    return schema


def data_table(name: str) -> dict[str, Any]:
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": _string_attributes(
            "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk"
        ),
        "KeySchema": _key("pk", "sk"),
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": _key(f"{index}pk", f"{index}sk"),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in INDEXES
        ],
    }


def coordination_table(name: str) -> dict[str, Any]:
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": _string_attributes("pk"),
        "KeySchema": _key("pk"),
    }


async def create_tables(client: Any, data: str, coordination: str) -> list[str]:
    """Create the tables that do not exist yet, and the data table's indexes an older table
    lacks, and wait until they are active; returns what was created (none when run again)."""
    existing: set[str] = set()
    paginator = client.get_paginator("list_tables")
    async for page in paginator.paginate():
        existing.update(page.get("TableNames", []))
    created = []
    for definition in (data_table(data), coordination_table(coordination)):
        name = definition["TableName"]
        if name in existing:
            continue
        try:
            await client.create_table(**definition)
        except client.exceptions.ResourceInUseException:
            continue  # created by a concurrent upgrade
        created.append(name)
    for name in (data, coordination):
        await client.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
    if coordination in created:
        # Abandoned leases disappear on their own (TTL deletes within days of expiry).
        await client.update_time_to_live(
            TableName=coordination,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_epoch"},
        )
    if data not in created:
        created.extend(await _add_missing_indexes(client, data))
    return created


async def _add_missing_indexes(client: Any, name: str) -> list[str]:
    """A table made before an index existed (gsi3 came with MLS feeds) gets it, one at a time:
    DynamoDB builds one new index per UpdateTable, filling it from the items already there."""
    table = (await client.describe_table(TableName=name))["Table"]
    present = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    definition = data_table(name)
    added = []
    for index in definition["GlobalSecondaryIndexes"]:
        index_name = index["IndexName"]
        if index_name in present:
            continue
        await client.update_table(
            TableName=name,
            AttributeDefinitions=_string_attributes(f"{index_name}pk", f"{index_name}sk"),
            GlobalSecondaryIndexUpdates=[{"Create": index}],
        )
        await _index_active(client, name, index_name)
        added.append(f"{name} (index {index_name})")
    return added


async def _index_active(client: Any, name: str, index_name: str) -> None:
    for _ in range(_INDEX_WAIT_SECONDS):
        table = (await client.describe_table(TableName=name))["Table"]
        status = {
            index["IndexName"]: index.get("IndexStatus")
            for index in table.get("GlobalSecondaryIndexes", [])
        }
        if status.get(index_name) == "ACTIVE":
            return
        await asyncio.sleep(1)
    raise TimeoutError(f"index {index_name} of {name} is still being built; run it again later")
