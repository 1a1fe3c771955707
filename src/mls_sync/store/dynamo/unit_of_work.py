"""The DynamoDB unit of work: a `DynamoSession` that hands out the repositories of every
aggregate (store/interface.py's `UnitOfWork`). `DynamoDatabase.transaction()` opens one."""

from __future__ import annotations

from mls_sync.store.dynamo.feeds import DynamoFeeds, DynamoReplica
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
from mls_sync.store.interface import Repository


class DynamoUnitOfWork(DynamoSession):
    users = Repository(DynamoUsers)
    feeds = Repository(DynamoFeeds)
    replica = Repository(DynamoReplica)
    connections = Repository(DynamoMlsConnections)
    listings = Repository(DynamoListings)
    platforms = Repository(DynamoPlatformConnections)
    posts = Repository(DynamoPosts)
    outbox = Repository(DynamoOutbox)
    runs = Repository(DynamoRuns)
    leases = Repository(DynamoLeases)
