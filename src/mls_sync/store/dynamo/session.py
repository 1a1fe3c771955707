"""`DynamoSession`: the unit of work the repository functions get on DynamoDB.

It offers the part of `AsyncSession` the sync path uses (`get`, `add`, `add_all`, `delete`,
`flush`) over the same model classes, as transient instances kept in an identity map with a
snapshot of what was read. Nothing is written until the transaction ends; then every new,
changed or deleted item is written in `TransactWriteItems` batches of up to 100, each write
conditioned: a new item on `attribute_not_exists(pk)`, a changed or deleted one on the
`version` it was read at (and the version goes up by one). A concurrent writer therefore
makes the commit fail with `StaleWriteError` instead of being silently overwritten; that is
what makes a status change idempotent (two runs cannot both record one change).

Leases and outbox claims are single conditional writes sent at once by their repository
functions, as the SQL backend's single statements are; so are the feeds' replica rows, in
batches (store/dynamo/feeds.py says why that is safe). What must wait until the unit of work's
items are in (a deleted feed's replica) is registered with `after_commit`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from sqlalchemy import inspect

from mls_sync.database_url import DynamoUrl
from mls_sync.store.dynamo.codec import Item, columns_of, from_item, n
from mls_sync.store.dynamo.schema import keys_of, primary_key
from mls_sync.store.models import Base, ListingStatusHistory

M = TypeVar("M", bound=Base)
T = TypeVar("T")
R = TypeVar("R")
BATCH = 100  # TransactWriteItems' limit
GET_BATCH = 100  # BatchGetItem's
WRITE_BATCH = 25  # BatchWriteItem's
# Requests in flight at once from one bulk read or write: half the client's pool (database.py),
# so the unit of work's other requests never wait for a connection.
AT_ONCE = 25
# A batch's unprocessed part (throttling) is sent again this many times, backing off.
_BATCH_ATTEMPTS = 10
Key = tuple[str, str]


class StaleWriteError(RuntimeError):
    """Another writer created, changed or deleted an item this unit of work wrote."""


@dataclass
class _Tracked:
    obj: Base
    snapshot: Item | None  # None: new in this unit of work
    version: int
    deleted: bool = False


async def each(
    values: Iterable[T], do: Callable[[T], Awaitable[R]], *, at_once: int = AT_ONCE
) -> list[R]:
    """`do` on every value, `at_once` of them in flight; the results in the values' order. The
    first failure cancels the rest and is raised as it is."""
    gate = asyncio.Semaphore(at_once)

    async def one(value: T) -> R:
        async with gate:
            return await do(value)

    tasks = [asyncio.ensure_future(one(value)) for value in values]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _chunks(values: Sequence[T], size: int) -> list[Sequence[T]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(min(2.0, 0.05 * 2**attempt))


_history_ids = itertools.count()


def _history_id() -> int:
    # Status history ids order a listing's history (SQL: an autoincrement column).
    # Microseconds since the epoch, then a per-process counter, keep them increasing.
    return time.time_ns() // 1000 * 1000 + next(_history_ids) % 1000


class DynamoSession:
    is_dynamodb = True  # what store/open.py's is_dynamodb asks

    def __init__(self, client: Any, tables: DynamoUrl) -> None:
        self.client = client
        self.tables = tables
        self._tracked: dict[Key, _Tracked] = {}
        self._after_commit: list[Callable[[], Awaitable[None]]] = []

    # the AsyncSession surface

    async def get(self, model: type[M], ident: Any) -> M | None:
        key = primary_key(model, ident)
        tracked = self._tracked.get(key)
        if tracked is not None:
            # The key is the model's: what is tracked under it is an M.
            return None if tracked.deleted else tracked.obj  # type: ignore[return-value]
        response = await self.client.get_item(
            TableName=self.tables.data_table,
            Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return None if item is None else self.adopt(model, item)

    def add(self, obj: Base) -> None:
        _apply_defaults(obj)
        key = _key_of(obj)
        if key not in self._tracked:
            self._tracked[key] = _Tracked(obj, None, 0)

    def add_all(self, objs: Iterable[Base]) -> None:
        for obj in objs:
            self.add(obj)

    async def delete(self, obj: Base) -> None:
        key = _key_of(obj)
        tracked = self._tracked.get(key)
        if tracked is None:
            raise ValueError(f"{type(obj).__name__} {key} is not part of this unit of work")
        if tracked.snapshot is None:
            del self._tracked[key]
        else:
            tracked.deleted = True

    async def flush(self) -> None:
        """Defaults are applied on `add`, and writes wait for the commit: nothing to do."""

    # reading for the repositories

    def adopt(self, model: type[M], item: Item) -> M | None:
        """The instance for a read item: the one already in this unit of work (with its
        pending changes) when there is one, None when it was deleted here."""
        key = (item["pk"]["S"], item["sk"]["S"])
        tracked = self._tracked.get(key)
        if tracked is not None:
            # The key is the model's: what is tracked under it is an M.
            return None if tracked.deleted else tracked.obj  # type: ignore[return-value]
        obj = from_item(model, item)
        self._tracked[key] = _Tracked(obj, columns_of(obj), int(item["version"]["N"]))
        return obj

    def adopt_all(self, model: type[M], items: Iterable[Item]) -> list[M]:
        adopted = (self.adopt(model, item) for item in items)
        return [obj for obj in adopted if obj is not None]

    def forget(self, model: type[Base], ident: Any) -> None:
        """Drop an item from the identity map after a write sent directly (a claim)."""
        self._tracked.pop(primary_key(model, ident), None)

    def after_commit(self, write: Callable[[], Awaitable[None]]) -> None:
        """Send `write` once this unit of work's items are written (never, when it fails)."""
        self._after_commit.append(write)

    async def query(
        self,
        key_condition: str,
        values: dict[str, Any],
        *,
        index: str | None = None,
        forward: bool = True,
        limit: int | None = None,
        filter_expression: str | None = None,
        names: dict[str, str] | None = None,
        projection: str | None = None,
    ) -> list[Item]:
        """Every matching item (following pages), in key order. `names` are the expressions'
        `#name` placeholders (needed for reserved words such as `state`)."""
        kwargs = self._query_args(key_condition, values, index, filter_expression, names)
        kwargs["ScanIndexForward"] = forward
        if projection is not None:
            kwargs["ProjectionExpression"] = projection
        items: list[Item] = []
        while True:
            response = await self.client.query(**kwargs)
            items.extend(response.get("Items", []))
            if limit is not None and len(items) >= limit:
                return items[:limit]
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def count(
        self, key_condition: str, values: dict[str, Any], *, index: str | None = None
    ) -> int:
        """How many items match, without reading them out (following pages)."""
        kwargs = self._query_args(key_condition, values, index, None, None)
        kwargs["Select"] = "COUNT"
        total = 0
        while True:
            response = await self.client.query(**kwargs)
            total += int(response.get("Count", 0))
            if "LastEvaluatedKey" not in response:
                return total
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _query_args(
        self,
        key_condition: str,
        values: dict[str, Any],
        index: str | None,
        filter_expression: str | None,
        names: dict[str, str] | None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "TableName": self.tables.data_table,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeValues": values,
        }
        if index is not None:
            kwargs["IndexName"] = index
        else:
            kwargs["ConsistentRead"] = True
        if filter_expression is not None:
            kwargs["FilterExpression"] = filter_expression
        if names:
            kwargs["ExpressionAttributeNames"] = names
        return kwargs

    # bulk reads and writes outside the identity map (the replica)

    async def batch_get(self, keys: Iterable[Key]) -> list[Item]:
        """The items with these keys that exist, read consistently, in no particular order."""
        table = self.tables.data_table

        async def get(part: Sequence[Key]) -> list[Item]:
            keys_of_part = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in part]
            request: dict[str, Any] = {table: {"Keys": keys_of_part, "ConsistentRead": True}}
            found: list[Item] = []
            for attempt in range(_BATCH_ATTEMPTS):
                response = await self.client.batch_get_item(RequestItems=request)
                found.extend(response.get("Responses", {}).get(table, []))
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    return found
                await _backoff(attempt)
            raise RuntimeError(f"DynamoDB kept refusing to read {table} (throttled)")

        parts = await each(_chunks(list(dict.fromkeys(keys)), GET_BATCH), get)
        return [item for part in parts for item in part]

    async def batch_write(self, requests: Sequence[dict[str, Any]]) -> None:
        """`PutRequest`s and `DeleteRequest`s, unconditional, sent now (at most one per key)."""
        table = self.tables.data_table

        async def write(part: Sequence[dict[str, Any]]) -> None:
            request: dict[str, Any] = {table: list(part)}
            for attempt in range(_BATCH_ATTEMPTS):
                response = await self.client.batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}
                if not request:
                    return
                await _backoff(attempt)
            raise RuntimeError(f"DynamoDB kept refusing to write {table} (throttled)")

        await each(_chunks(requests, WRITE_BATCH), write)

    # the commit

    def pending_writes(self) -> list[tuple[Key, int, dict[str, Any]]]:
        """The conditional writes this unit of work needs, in the order things were added,
        each with its item's key and version once written."""
        table = self.tables.data_table
        writes: list[tuple[Key, int, dict[str, Any]]] = []
        for key, tracked in self._tracked.items():
            if tracked.deleted:
                delete = {
                    "TableName": table,
                    "Key": {"pk": {"S": key[0]}, "sk": {"S": key[1]}},
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": {":v": n(tracked.version)},
                }
                writes.append((key, 0, {"Delete": delete}))
                continue
            columns = columns_of(tracked.obj)
            if tracked.snapshot is None:
                condition, values, version = "attribute_not_exists(pk)", None, 1
            elif columns != tracked.snapshot:
                if _apply_onupdate(tracked.obj):
                    columns = columns_of(tracked.obj)
                condition, version = "version = :v", tracked.version + 1
                values = {":v": n(tracked.version)}
            else:
                continue
            item = {**columns, "version": n(version)}
            item.update({name: {"S": value} for name, value in keys_of(tracked.obj).items()})
            put: dict[str, Any] = {"TableName": table, "Item": item}
            put["ConditionExpression"] = condition
            if values is not None:
                put["ExpressionAttributeValues"] = values
            writes.append((key, version, {"Put": put}))
        return writes

    async def commit(self) -> None:
        writes = self.pending_writes()
        # Over 100 writes are several transactions: each is atomic, the whole is not (the
        # sync path writes a page of changes, far below that, per transaction).
        for start in range(0, len(writes), BATCH):
            batch = [write for _, _, write in writes[start : start + BATCH]]
            try:
                await self.client.transact_write_items(TransactItems=batch)
            except ClientError as exc:
                if _error_code(exc) == "TransactionCanceledException":
                    raise StaleWriteError(_conflict_message(exc, batch)) from exc
                raise
        for key, version, _ in writes:
            tracked = self._tracked[key]
            if tracked.deleted:
                del self._tracked[key]
            else:
                tracked.snapshot, tracked.version = columns_of(tracked.obj), version
        after, self._after_commit = self._after_commit, []
        for send in after:
            await send()


def _key_of(obj: Base) -> Key:
    keys = keys_of(obj)
    return keys["pk"], keys["sk"]


def _apply_defaults(obj: Base) -> None:
    """What SQLAlchemy's column defaults give a row on INSERT (ids, timestamps, states)."""
    for column in inspect(type(obj)).columns:
        if getattr(obj, column.key) is not None or column.default is None:
            continue
        default: Any = column.default
        value = default.arg(None) if default.is_callable else default.arg
        setattr(obj, column.key, value)
    if isinstance(obj, ListingStatusHistory) and obj.id is None:
        obj.id = _history_id()


def _apply_onupdate(obj: Base) -> bool:
    changed = False
    for column in inspect(type(obj)).columns:
        onupdate: Any = column.onupdate
        if onupdate is not None and onupdate.is_callable:
            setattr(obj, column.key, onupdate.arg(None))
            changed = True
    return changed


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _conflict_message(exc: ClientError, batch: list[dict[str, Any]]) -> str:
    reasons = exc.response.get("CancellationReasons") or []
    stale = [
        next(iter(write.values()))["Key" if "Delete" in write else "Item"]["pk"]["S"]
        for write, reason in zip(batch, reasons, strict=False)
        if reason.get("Code") == "ConditionalCheckFailed"
    ]
    where = ", ".join(stale) if stale else "an item"
    return f"written concurrently by someone else: {where}; nothing of this unit was saved"
