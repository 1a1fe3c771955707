"""What the services hand to the edges, and what they take as a unit of work.

The edges render these records (their public columns; secret columns are never rendered)
and pass the unit of work they opened (`runtime.db.transaction()`, a `UnitOfWork`) back in;
they never reach the storage themselves.
"""

from __future__ import annotations

from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import (
    Listing,
    MlsConnection,
    MlsFeed,
    PlatformConnection,
    Post,
    SyncRun,
    User,
)

__all__ = [
    "Listing",
    "MlsConnection",
    "MlsFeed",
    "PlatformConnection",
    "Post",
    "SyncRun",
    "UnitOfWork",
    "User",
]
