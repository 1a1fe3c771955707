"""The DynamoDB unit of work: a `DynamoSession` that hands out the repositories of every
aggregate (store/interface.py's `UnitOfWork`). `DynamoDatabase.transaction()` opens one."""

from __future__ import annotations

from mls_sync.store.dynamo.leases import DynamoLeases
from mls_sync.store.dynamo.repositories import (
    DynamoListings,
    DynamoMlsConnections,
    DynamoOutbox,
    DynamoPlatformConnections,
    DynamoPosts,
    DynamoRuns,
    DynamoUsers,
)
from mls_sync.store.dynamo.session import DynamoSession
from mls_sync.store.interface import (
    Leases,
    Listings,
    MlsConnections,
    Outbox,
    PlatformConnections,
    Posts,
    Repository,
    Runs,
    Users,
)


class DynamoUnitOfWork(DynamoSession):
    users: Repository[Users] = Repository(DynamoUsers)
    connections: Repository[MlsConnections] = Repository(DynamoMlsConnections)
    listings: Repository[Listings] = Repository(DynamoListings)
    platforms: Repository[PlatformConnections] = Repository(DynamoPlatformConnections)
    posts: Repository[Posts] = Repository(DynamoPosts)
    outbox: Repository[Outbox] = Repository(DynamoOutbox)
    runs: Repository[Runs] = Repository(DynamoRuns)
    leases: Repository[Leases] = Repository(DynamoLeases)
