"""`INSERT ... ON CONFLICT DO UPDATE` on whichever SQL database the session is bound to.

SQLAlchemy's PostgreSQL and SQLite inserts both offer `on_conflict_do_update` with the same
arguments (and `excluded`), but each lives in its dialect's module: this picks the one for the
session, so a store module writes its upsert once for both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def upsert(session: AsyncSession, table: Any) -> Any:
    """The dialect's insert for `table` (a Table or a mapped class), ready for
    `.values(...)` and `.on_conflict_do_update(...)`. Typed Any: the two dialects' Insert
    classes share the method but no base class that declares it."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
