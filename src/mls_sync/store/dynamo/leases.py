"""Connection leases on DynamoDB: one item per connection in `PREFIX-coordination`, each
change a single conditional write (what store/sql/leases.py does with one statement).

Taking succeeds only when there is no lease or it has expired; renewing and releasing only
when the caller is still the holder. `expires_epoch` lets the table's TTL clear leases their
holders abandoned.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from mls_sync.store.dynamo.codec import iso, n, parse_iso, s
from mls_sync.store.dynamo.session import DynamoSession
from mls_sync.store.models import ConnectionLease


def _key(connection_id: str) -> dict[str, Any]:
    return {"pk": s(f"LEASE#{connection_id}")}


def _refused(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoLeases:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def take_many(
        self, connection_ids: Collection[str], holder: str, *, now: datetime, ttl: timedelta
    ) -> dict[str, str | None]:
        """One read and one conditional write per id: DynamoDB has no multi-item conditional
        put outside a transaction, and a transaction's one failed condition fails them all."""
        taken: dict[str, str | None] = {}
        for connection_id in sorted(set(connection_ids)):
            prior = await self.of(connection_id)
            if await self.take(connection_id, holder, now=now, ttl=ttl):
                by = prior.holder if prior is not None else None
                taken[connection_id] = None if by in (None, holder) else by
        return taken

    async def take(self, connection_id: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        expires = now + ttl
        try:
            await self._session.client.put_item(
                TableName=self._session.tables.coordination_table,
                Item={
                    **_key(connection_id),
                    "connection_id": s(connection_id),
                    "holder": s(holder),
                    "acquired_at": s(iso(now)),
                    "expires_at": s(iso(expires)),
                    "expires_epoch": n(int(expires.timestamp()) + 86400),
                },
                ConditionExpression="attribute_not_exists(pk) OR expires_at <= :now",
                ExpressionAttributeValues={":now": s(iso(now))},
            )
        except ClientError as exc:
            if _refused(exc):
                return False
            raise
        return True

    async def renew(
        self, connection_id: str, holder: str, *, now: datetime, ttl: timedelta
    ) -> bool:
        expires = now + ttl
        try:
            await self._session.client.update_item(
                TableName=self._session.tables.coordination_table,
                Key=_key(connection_id),
                UpdateExpression="SET expires_at = :expires, expires_epoch = :epoch",
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={
                    ":expires": s(iso(expires)),
                    ":epoch": n(int(expires.timestamp()) + 86400),
                    ":holder": s(holder),
                },
            )
        except ClientError as exc:
            if _refused(exc):
                return False
            raise
        return True

    async def release(self, connection_id: str, holder: str) -> None:
        try:
            await self._session.client.delete_item(
                TableName=self._session.tables.coordination_table,
                Key=_key(connection_id),
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": s(holder)},
            )
        except ClientError as exc:
            if not _refused(exc):
                raise

    async def release_many(self, connection_ids: Collection[str], holder: str) -> None:
        # A conditional delete each: DynamoDB's batch writes take no conditions.
        for connection_id in sorted(set(connection_ids)):
            await self.release(connection_id, holder)

    async def of(self, connection_id: str) -> ConnectionLease | None:
        response = await self._session.client.get_item(
            TableName=self._session.tables.coordination_table,
            Key=_key(connection_id),
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        return ConnectionLease(
            connection_id=connection_id,
            holder=item["holder"]["S"],
            acquired_at=parse_iso(item["acquired_at"]["S"]),
            expires_at=parse_iso(item["expires_at"]["S"]),
        )
