"""The database's schema: migrations on SQL (and procrastinate's tables on PostgreSQL, for the
workers), or the tables on DynamoDB. Run by `mls-sync db upgrade` and `mls-sync serve`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from mls_sync.config import Settings
from mls_sync.domain.errors import Unavailable
from mls_sync.store.database import Database
from mls_sync.store.migrate import current_revision, upgrade
from mls_sync.store.open import open_database


@dataclass
class SchemaReport:
    revision: str | None = None  # SQL: the revision the database is at now
    procrastinate_installed: bool = False  # PostgreSQL: installed just now
    tables: str = ""  # DynamoDB: the table names
    created: list[str] = field(default_factory=list)  # DynamoDB: created just now

    @property
    def on_dynamodb(self) -> bool:
        return bool(self.tables)


# Installs the job queue's tables on PostgreSQL; True when it did (worker/schema.py).
WorkerSchema = Callable[[Settings], Awaitable[bool]]


async def upgrade_schema(
    settings: Settings, revision: str = "head", *, worker_schema: WorkerSchema | None = None
) -> SchemaReport:
    """Bring the schema up to `revision`, and on PostgreSQL the job queue's with
    `worker_schema`; `Unavailable` when the database cannot be reached."""
    db = open_database(settings.async_database_url)
    try:
        if not isinstance(db, Database):
            return await _dynamodb_tables(db)
        await upgrade(db, revision)
        report = SchemaReport()
        if worker_schema is not None and not db.is_sqlite:
            report.procrastinate_installed = await worker_schema(settings)
        report.revision = await current_revision(db)
        return report
    except OSError as exc:
        raise Unavailable(f"Cannot reach the database: {exc}") from None
    finally:
        await db.dispose()


async def _dynamodb_tables(db: object) -> SchemaReport:
    from mls_sync.store.dynamo.database import DynamoDatabase

    assert isinstance(db, DynamoDatabase)
    try:
        created = list(await db.create_tables())
    except Exception as exc:
        # botocore's errors (no endpoint, credentials or permission) share no base class.
        if type(exc).__module__.startswith(("botocore", "aiobotocore")):
            raise Unavailable(f"Cannot create the DynamoDB tables: {exc}") from None
        raise
    tables = f"{db.tables.data_table}, {db.tables.coordination_table}"
    return SchemaReport(tables=tables, created=created)
