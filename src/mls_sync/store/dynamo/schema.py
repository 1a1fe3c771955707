"""The table layout (README "DynamoDB tables", deploy/aws/template.yaml) and `create_tables`.

`PREFIX-data` is a single table: every row of every model is one item whose `pk`/`sk` name
the model and id (so `session.get(Model, id)` is one GetItem), and whose `gsi1`/`gsi2` keys
serve the repository's queries: listings by connection, posts by listing, outbox jobs by due
time, a user's connections, runs newest first. `PREFIX-coordination` holds connection leases,
written only with conditional writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mls_sync.store.dynamo.codec import iso
from mls_sync.store.models import (
    Base,
    Listing,
    ListingStatusHistory,
    MlsConnection,
    PlatformConnection,
    Post,
    SyncRun,
    UnpublishJob,
    User,
)

GSI1 = "gsi1"
GSI2 = "gsi2"
OUTBOX = "OUTBOX"
ALL_RUNS = "RUNS#ALL"

# Each model's item type: `pk` is TYPE#id and `sk` is #TYPE, except status history, which
# lives in its listing's partition (read as one Query, oldest first).
TYPES: dict[type[Base], str] = {
    User: "USER",
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


def _user(o: User) -> dict[str, str | None]:
    return {
        "gsi1pk": f"EMAIL#{o.email}",
        "gsi1sk": "#USER",
        "gsi2pk": f"APIKEY#{o.api_key_hash}" if o.api_key_hash else None,
        "gsi2sk": "#USER" if o.api_key_hash else None,
    }


def _connection(o: MlsConnection) -> dict[str, str | None]:
    order = f"CONN#{iso(o.created_at)}#{o.id}"
    return {
        "gsi1pk": f"USER#{o.user_id}",
        "gsi1sk": order,
        "gsi2pk": f"CONNSTATE#{o.state}",
        "gsi2sk": order,
    }


def _listing(o: Listing) -> dict[str, str | None]:
    return {
        "gsi1pk": f"CONN#{o.mls_connection_id}",
        "gsi1sk": f"LISTING#{o.listing_key}",
        "gsi2pk": f"USER#{o.user_id}",
        "gsi2sk": f"LISTING#{iso(o.created_at)}#{o.id}",
    }


def _platform(o: PlatformConnection) -> dict[str, str | None]:
    return {"gsi1pk": f"USER#{o.user_id}", "gsi1sk": f"PLATFORM#{o.platform}"}


def _post(o: Post) -> dict[str, str | None]:
    return {"gsi1pk": f"LISTING#{o.listing_id}", "gsi1sk": f"POST#{iso(o.created_at)}#{o.id}"}


def _job(o: UnpublishJob) -> dict[str, str | None]:
    return {
        "gsi1pk": OUTBOX,
        "gsi1sk": f"{iso(o.next_attempt_at)}#{o.id}",
        "gsi2pk": f"JOBPOST#{o.post_id}",
        "gsi2sk": "#JOB",
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
            "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"
        ),
        "KeySchema": _key("pk", "sk"),
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": _key(f"{index}pk", f"{index}sk"),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in (GSI1, GSI2)
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
    """Create the tables that do not exist yet and wait until they are active; returns the
    names created (none when run again)."""
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
    return created
