"""The SQL unit of work: an `AsyncSession` that hands out the repositories of every aggregate
(store/interface.py's `UnitOfWork`). `Database.transaction()` opens one per block."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync.store.interface import Repository
from mls_sync.store.sql.connections import SqlMlsConnections
from mls_sync.store.sql.feeds import SqlFeeds, SqlReplica
from mls_sync.store.sql.leases import SqlLeases
from mls_sync.store.sql.listings import SqlListings
from mls_sync.store.sql.outbox import SqlOutbox
from mls_sync.store.sql.platforms import SqlPlatformConnections
from mls_sync.store.sql.posts import SqlPosts
from mls_sync.store.sql.runs import SqlRuns
from mls_sync.store.sql.users import SqlUsers


class SqlSession(AsyncSession):
    users = Repository(SqlUsers)
    feeds = Repository(SqlFeeds)
    replica = Repository(SqlReplica)
    connections = Repository(SqlMlsConnections)
    listings = Repository(SqlListings)
    platforms = Repository(SqlPlatformConnections)
    posts = Repository(SqlPosts)
    outbox = Repository(SqlOutbox)
    runs = Repository(SqlRuns)
    leases = Repository(SqlLeases)
