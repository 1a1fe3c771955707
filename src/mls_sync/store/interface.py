"""The one storage interface: what a unit of work offers, aggregate by aggregate.

Each backend implements every Protocol here: `store/sql/` (SQLAlchemy, for SQLite and
PostgreSQL) and `store/dynamo/` (DynamoDB). Code above the storage types its unit of work as
`UnitOfWork` and asks it, say, `uow.listings.of_connection(connection_id)`. mypy checks
that both backends fit (store/open.py, where the backend is chosen, holds each database and
unit of work as this module's types), so a missing or changed method fails `make test`. A
unit of work never commits by itself: whoever opened it (`Database.transaction()`) does, when
its block ends without an exception.

What needs nothing backend-specific (get a row by key, add one, change attributes) is written
once, over this interface, in `store/repositories.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar, overload

from mls_sync.domain.replica import ReplicaRow
from mls_sync.domain.status import ConnectionState, ListingStatus
from mls_sync.store.models import (
    Base,
    ConnectionLease,
    FeedRecord,
    Listing,
    ListingStatusHistory,
    MlsConnection,
    MlsFeed,
    PlatformConnection,
    Post,
    SyncRun,
    UnpublishJob,
    User,
)

M = TypeVar("M", bound=Base)


class Users(Protocol):
    async def find(self, id_or_email: str) -> User | None:
        """By id, or by email (any case) when it holds an `@`."""
        ...

    async def all(self) -> Sequence[User]:
        """Oldest first."""
        ...

    async def by_api_key_hash(self, key_hash: str) -> User | None: ...


class Feeds(Protocol):
    """The MLS feeds: the operator's shared ones and users' private ones."""

    async def all(self, *, owner_user_id: str | None = None) -> Sequence[MlsFeed]:
        """Oldest first; with an owner, only that user's private feeds."""
        ...

    async def active_ids(self) -> list[str]:
        """Feeds that may be replicated now (expired ones wait for new credentials), oldest
        first."""
        ...

    async def with_ids(self, feed_ids: Collection[str]) -> Sequence[MlsFeed]:
        """The feeds of `feed_ids` that exist, in no particular order (a cron cycle opens
        every feed it runs at once)."""
        ...

    async def ran(self, feed_id: str, at: datetime) -> None:
        """The feed's run that started `at` succeeded: its next is due a cadence after it,
        and every member was synced then. One write, whatever the number of members."""
        ...

    async def delete(self, feed_id: str) -> None:
        """The feed with its replica, its memberships and their listings."""
        ...


class Replica(Protocol):
    """Each feed's local copy of its Property records' key fields."""

    async def upsert(self, feed_id: str, rows: Sequence[ReplicaRow], *, seen_at: datetime) -> None:
        """Insert or replace each row by (feed, ListingKey)."""
        ...

    async def of_keys(self, feed_id: str, keys: Collection[str]) -> dict[str, FeedRecord]:
        """The rows for these ListingKeys, by key (absent keys are not in the replica)."""
        ...

    async def find(
        self,
        feed_id: str,
        *,
        listing_key: str | None = None,
        listing_id: str | None = None,
        agent_mls_id: str | None = None,
        office_mls_id: str | None = None,
    ) -> Sequence[FeedRecord]:
        """Rows equal to every criterion given (gone ones included), by ListingKey."""
        ...

    async def touch(self, feed_id: str, keys: Collection[str], *, seen_at: datetime) -> None:
        """The feed still has these records (a reconciliation's key-only pull)."""
        ...

    async def mark_gone_unseen(self, feed_id: str, *, since: datetime) -> list[str]:
        """Rows not seen since `since` and not modified since then left the feed: mark them
        gone and return their keys."""
        ...

    async def count(self, feed_id: str) -> int: ...


class MlsConnections(Protocol):
    async def of_user(self, user_id: str) -> Sequence[MlsConnection]:
        """Oldest first."""
        ...

    async def of_feed(self, feed_id: str) -> Sequence[MlsConnection]:
        """The feed's members, oldest first."""
        ...

    async def holdings(self, feed_id: str) -> dict[str, int]:
        """The feed's members' ids, oldest first, each with how many listings it holds (a
        feed run reports every member: one query, not the members' rows)."""
        ...

    async def holdings_of(self, feed_ids: Collection[str]) -> dict[str, dict[str, int]]:
        """`holdings` for many feeds: {feed id: its members' holdings}, every feed asked for
        present (an empty dict for a feed without members)."""
        ...

    async def with_ids(self, connection_ids: Collection[str]) -> Sequence[MlsConnection]:
        """These connections (the ones that exist), in one round."""
        ...

    async def mark_feed(self, feed_id: str, state: ConnectionState, message: str | None) -> None:
        """Every member of the feed takes the feed's state (an expired credential)."""
        ...

    async def delete(self, connection_id: str) -> None:
        """The connection with its listings, their history and posts."""
        ...

    async def state_counts(self) -> dict[str, int]:
        """How many connections are in each state (metrics)."""
        ...


class Listings(Protocol):
    async def of_connection(self, connection_id: str) -> Sequence[Listing]:
        """By ListingKey."""
        ...

    async def by_key(self, connection_id: str, listing_key: str) -> Listing | None: ...

    async def held_in_feed(self, feed_id: str, keys: Collection[str]) -> Sequence[Listing]:
        """Every listing of the feed with one of these ListingKeys, whoever holds it."""
        ...

    async def of_feed(self, feed_id: str) -> Sequence[Listing]:
        """Every listing held in the feed, by ListingKey (reconciliation)."""
        ...

    async def lock(self, listing_id: str) -> Listing | None:
        """The listing, held against other writers until the unit of work ends."""
        ...

    async def lock_many(self, listing_ids: Collection[str]) -> dict[str, Listing]:
        """`lock` for many, in one round and in id order (two writers never wait on each
        other's half); listings that no longer exist are left out."""
        ...

    async def history(self, listing_id: str) -> Sequence[ListingStatusHistory]:
        """Its status changes, oldest first."""
        ...

    async def of_user(
        self,
        user_id: str,
        *,
        connection_id: str | None = None,
        status: ListingStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[Listing]:
        """Oldest first."""
        ...


class PlatformConnections(Protocol):
    async def get(self, user_id: str, platform: str) -> PlatformConnection | None: ...

    async def of_user(self, user_id: str) -> Sequence[PlatformConnection]:
        """By platform."""
        ...

    async def due_for_care(self, checked_before: datetime) -> Sequence[PlatformConnection]:
        """Active connections whose tokens were not refreshed, verified or judged since
        `checked_before` (never, included): the token care's work for this run."""
        ...

    async def lock(self, connection_id: str) -> PlatformConnection | None:
        """The connection, held until the unit of work ends: whoever holds it is the only one
        refreshing its tokens."""
        ...

    async def delete(self, user_id: str, platform: str) -> bool:
        """False when there was none."""
        ...

    async def state_counts(self) -> dict[tuple[str, str], int]:
        """How many connections of each platform are in each state (metrics)."""
        ...


class Posts(Protocol):
    async def of_listing(self, listing_id: str) -> Sequence[Post]:
        """Oldest first."""
        ...

    async def of_user(
        self, user_id: str, *, listing_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> Sequence[Post]:
        """Oldest first."""
        ...


class Outbox(Protocol):
    """The unpublish jobs: one per published post of a sold listing, until it is down."""

    async def enqueue(self, listing_id: str) -> int:
        """One job per published post of the listing that has none yet; returns how many."""
        ...

    async def due(
        self, *, now: datetime, listing_ids: Collection[str] | None = None
    ) -> Sequence[tuple[UnpublishJob, Post, Listing]]:
        """Jobs due by `now` (of these listings only, when given), the longest due first."""
        ...

    async def claim(
        self, job_id: str, *, now: datetime, until: datetime, by: str | None = None
    ) -> bool:
        """Take a due job until `until` (a lease) for `by`, at once, outside the unit of
        work's commit. False when it is no longer due: another drain claimed it first, and
        only one of them may call the platform."""
        ...

    async def release_claims(self, by: str, *, now: datetime) -> int:
        """Every job `by` claimed is due again at `now` (its holder died); how many."""
        ...

    async def depth(self) -> tuple[int, datetime | None]:
        """How many jobs wait, and when the oldest was queued (metrics)."""
        ...


class Runs(Protocol):
    async def newest(
        self, *, user_id: str | None, limit: int = 50, before: datetime | None = None
    ) -> list[SyncRun]:
        """Newest first; `user_id=None`: every user's runs (and system runs); `before` pages
        on `started_at`."""
        ...

    async def finish(self, run_id: str, values: dict[str, Any]) -> None:
        """Set the run's closing fields (`values`: column -> value), in one write (SQL: one
        UPDATE, no read of the row first); a run that no longer exists is left alone."""
        ...


class Leases(Protocol):
    """One row per connection being synced: who holds it, until when (sync/guard.py)."""

    async def take_many(
        self, connection_ids: Collection[str], holder: str, *, now: datetime, ttl: timedelta
    ) -> dict[str, str | None]:
        """`take` for many at once: each id taken, with the holder whose lapsed lease it
        took over (None: there was no lease, or it was `holder`'s own)."""
        ...

    async def take(self, connection_id: str, holder: str, *, now: datetime, ttl: timedelta) -> bool:
        """Take the lease for `holder` until `now + ttl`: True when it was free (no row, or an
        expired one). One atomic write, so a concurrent taker sees ours."""
        ...

    async def renew(
        self, connection_id: str, holder: str, *, now: datetime, ttl: timedelta
    ) -> bool:
        """Push the holder's lease out to `now + ttl`; False when it is no longer theirs (it
        lapsed and someone took it over)."""
        ...

    async def release(self, connection_id: str, holder: str) -> None:
        """Give it back (a no-op when it is not the holder's any more)."""
        ...

    async def release_many(self, connection_ids: Collection[str], holder: str) -> None:
        """`release` for many at once (a cron cycle gives its feeds back together)."""
        ...

    async def of(self, connection_id: str) -> ConnectionLease | None:
        """The lease as stored (expired or not), for tests and diagnostics."""
        ...


class UnitOfWork(Protocol):
    """One transaction: the rows it reads are tracked, and what changes on them is written
    when it commits."""

    @property
    def users(self) -> Users: ...

    @property
    def feeds(self) -> Feeds: ...

    @property
    def replica(self) -> Replica: ...

    @property
    def connections(self) -> MlsConnections: ...

    @property
    def listings(self) -> Listings: ...

    @property
    def platforms(self) -> PlatformConnections: ...

    @property
    def posts(self) -> Posts: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def runs(self) -> Runs: ...

    @property
    def leases(self) -> Leases: ...

    async def get(self, model: type[M], ident: Any, /) -> M | None: ...

    def add(self, instance: Base, /) -> None: ...

    async def delete(self, instance: Base, /) -> None: ...

    async def flush(self) -> None: ...


# A GCRA bucket's row key, its spacing T and its tolerance tau, in seconds.
BucketSpacing = tuple[str, float, float]


class RateBuckets(Protocol):
    """MLS request budgets shared by every process (GCRA rows). PostgreSQL only: the settings
    refuse shared budgets on SQLite and DynamoDB, where one process holds them in memory."""

    async def take(
        self, buckets: Sequence[BucketSpacing], *, max_wait: float
    ) -> tuple[dict[str, float], float]:
        """One request from every bucket at once, unless one of them would make it wait more
        than `max_wait`: the buckets that gave (key -> TAT after this request; those that
        refused are absent) and the database's clock now."""
        ...

    async def pause(self, key: str, seconds: float) -> None:
        """Nobody takes from this bucket for `seconds` (a 429's Retry-After)."""
        ...


R_co = TypeVar("R_co", covariant=True)


class Repository(Generic[R_co]):
    """A unit of work's repository attribute: `users = Repository(SqlUsers)` hands out
    `SqlUsers(uow)` on each access (a view on the unit of work, with no state of its own)."""

    def __init__(self, make: Callable[[Any], R_co]) -> None:
        self._make = make

    @overload
    def __get__(self, uow: None, owner: type[Any]) -> Repository[R_co]: ...

    @overload
    def __get__(self, uow: object, owner: type[Any]) -> R_co: ...

    def __get__(self, uow: object | None, owner: type[Any]) -> Repository[R_co] | R_co:
        return self if uow is None else self._make(uow)


class Storage(Protocol):
    """A backend: units of work on it, and its end."""

    @property
    def is_sqlite(self) -> bool: ...

    def transaction(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    async def ping(self) -> None:
        """Raises when the backend cannot be reached (or, on DynamoDB, has no tables)."""
        ...

    async def dispose(self) -> None: ...


__all__ = [
    "BucketSpacing",
    "Feeds",
    "Leases",
    "Listings",
    "MlsConnections",
    "Outbox",
    "PlatformConnections",
    "Posts",
    "RateBuckets",
    "Replica",
    "Repository",
    "Runs",
    "Storage",
    "UnitOfWork",
    "Users",
]
