"""`DynamoDatabase`: the DynamoDB backend's `Storage` (store/interface.py), as
`store.database.Database` is SQL's: `transaction()`, `ping()`, `dispose()`, `is_sqlite`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from mls_sync.database_url import DynamoUrl, parse_dynamodb_url
from mls_sync.store.dynamo.migrate import migrate_to_feeds
from mls_sync.store.dynamo.schema import create_tables
from mls_sync.store.dynamo.unit_of_work import DynamoUnitOfWork
from mls_sync.store.errors import TablesMissingError


class DynamoDatabase:
    is_sqlite = False
    is_dynamodb = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.tables: DynamoUrl = parse_dynamodb_url(url)
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._opening = asyncio.Lock()

    async def client(self) -> Any:
        """The aiobotocore client, opened on first use (inside the running event loop)."""
        async with self._opening:
            if self._client is None:
                stack = AsyncExitStack()
                self._client = await stack.enter_async_context(
                    get_session().create_client(
                        "dynamodb",
                        region_name=self.tables.region,
                        endpoint_url=self.tables.endpoint_url,
                        config=AioConfig(
                            retries={"max_attempts": 5, "mode": "standard"},
                            max_pool_connections=50,  # the sync runs many transactions at once
                        ),
                    )
                )
                self._stack = stack
        return self._client

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[DynamoUnitOfWork]:
        """One unit of work: its writes are sent when the block ends without an exception."""
        session = DynamoUnitOfWork(await self.client(), self.tables)
        try:
            yield session
            await session.commit()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise TablesMissingError(self.missing_tables_message()) from exc
            raise

    def missing_tables_message(self) -> str:
        return (
            f"The DynamoDB tables {self.tables.data_table} and {self.tables.coordination_table}"
            " do not exist yet: run `mls-sync db upgrade` first"
        )

    async def create_tables(self) -> list[str]:
        """`mls-sync db upgrade` on DynamoDB: the tables, created when missing, and the items
        written before MLS feeds brought to today's layout (store/dynamo/migrate.py)."""
        client, data = await self.client(), self.tables.data_table
        done = await create_tables(client, data, self.tables.coordination_table)
        return done + await migrate_to_feeds(client, data, new_table=data in done)

    async def ping(self) -> None:
        client = await self.client()
        try:
            await client.describe_table(TableName=self.tables.data_table)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise TablesMissingError(self.missing_tables_message()) from exc
            raise

    async def dispose(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._client = None
