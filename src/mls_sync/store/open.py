"""Which storage backend a DATABASE_URL names: SQLAlchemy (SQLite, PostgreSQL) or DynamoDB.

The DynamoDB backend (store/dynamo/) is imported only for a `dynamodb://` URL, so its client
library stays an optional extra (`pip install 'mls-sync[dynamodb]'`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.database_url import is_dynamodb_url
from mls_sync.store.database import Database
from mls_sync.store.errors import SqlOnlyError
from mls_sync.store.interface import Storage, UnitOfWork

if TYPE_CHECKING:
    from mls_sync.store.dynamo.database import DynamoDatabase
    from mls_sync.store.dynamo.unit_of_work import DynamoUnitOfWork
    from mls_sync.store.sql.session import SqlSession

    # mypy checks both backends against store/interface.py here: a missing or changed method
    # of either fails `make test`.
    def _sql_fits(db: Database, uow: SqlSession) -> tuple[Storage, UnitOfWork]:
        return db, uow

    def _dynamodb_fits(db: DynamoDatabase, uow: DynamoUnitOfWork) -> tuple[Storage, UnitOfWork]:
        return db, uow


def open_database(url: str) -> Database | DynamoDatabase:
    """The backend for `url` (an async SQLAlchemy URL, or `dynamodb://PREFIX?...`)."""
    if is_dynamodb_url(url):
        try:
            from mls_sync.store.dynamo.database import DynamoDatabase
        except ImportError as exc:  # the optional extra is not installed
            raise RuntimeError(
                "DATABASE_URL=dynamodb://... needs the dynamodb extra: "
                "pip install 'mls-sync[dynamodb]'"
            ) from exc
        return DynamoDatabase(url)
    return Database(url)


def is_dynamodb(db_or_session: Any) -> bool:
    """True for a DynamoDatabase or one of its sessions (without importing the backend):
    both say so with a class attribute."""
    return getattr(type(db_or_session), "is_dynamodb", False) is True


def sql_session(uow: UnitOfWork, feature: str) -> AsyncSession:
    """The unit of work as the SQL session it is, for a SQL-only feature; `SqlOnlyError` (one
    clear message) on DynamoDB."""
    if not isinstance(uow, AsyncSession):
        raise SqlOnlyError(feature)
    return uow


def sql_database(db: Storage, feature: str) -> Database:
    """The backend as the SQL database it is, for a SQL-only feature; `SqlOnlyError` on
    DynamoDB."""
    if not isinstance(db, Database):
        raise SqlOnlyError(feature)
    return db
