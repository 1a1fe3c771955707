"""The DynamoDB repositories: one class per aggregate, each implementing its Protocol of
store/interface.py over a `DynamoSession` (the unit of work, store/dynamo/unit_of_work.py).

Reads by key are consistent GetItems; lists come from the index the table layout gives them
(schema.py). Writes go through the session's unit of work, except an outbox claim, which is a
single conditional write like the SQL backend's UPDATE ... WHERE.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from mls_sync.domain.status import ConnectionState, ListingStatus, PostStatus
from mls_sync.store.dynamo.codec import iso, n, s
from mls_sync.store.dynamo.schema import ALL_RUNS, GSI1, GSI2, OUTBOX, primary_key
from mls_sync.store.dynamo.session import DynamoSession
from mls_sync.store.models import (
    Listing,
    ListingStatusHistory,
    MlsConnection,
    PlatformConnection,
    Post,
    SyncRun,
    UnpublishJob,
    User,
)

_BEGINS = "{0}pk = :pk AND begins_with({0}sk, :prefix)"


async def _index(
    session: DynamoSession, index: str, pk: str, prefix: str = "", **kwargs: Any
) -> list[dict[str, Any]]:
    """An index partition's items whose sort key starts with `prefix`, in sort-key order."""
    if not prefix:  # begins_with refuses an empty string
        return await session.query(f"{index}pk = :pk", {":pk": s(pk)}, index=index, **kwargs)
    return await session.query(
        _BEGINS.format(index), {":pk": s(pk), ":prefix": s(prefix)}, index=index, **kwargs
    )


async def _jobs_of(session: DynamoSession, post_id: str) -> list[UnpublishJob]:
    return session.adopt_all(UnpublishJob, await _index(session, GSI2, f"JOBPOST#{post_id}"))


class DynamoUsers:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def find(self, id_or_email: str) -> User | None:
        if "@" in id_or_email:
            email = id_or_email.strip().lower()
            users = self._session.adopt_all(
                User, await _index(self._session, GSI1, f"EMAIL#{email}")
            )
            return users[0] if users else None
        return await self._session.get(User, id_or_email)

    async def all(self) -> Sequence[User]:
        items = await self._session.scan("sk = :sk", {":sk": s(primary_key(User, "")[1])})
        return sorted(self._session.adopt_all(User, items), key=lambda u: (u.created_at, u.id))

    async def by_api_key_hash(self, key_hash: str) -> User | None:
        users = self._session.adopt_all(
            User, await _index(self._session, GSI2, f"APIKEY#{key_hash}")
        )
        return users[0] if users else None


class DynamoMlsConnections:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def of_user(self, user_id: str) -> Sequence[MlsConnection]:
        items = await _index(self._session, GSI1, f"USER#{user_id}", "CONN#")
        return self._session.adopt_all(MlsConnection, items)

    async def active_ids(self) -> list[str]:
        items = await _index(self._session, GSI2, f"CONNSTATE#{ConnectionState.ACTIVE}", "CONN#")
        return [c.id for c in self._session.adopt_all(MlsConnection, items)]

    async def delete(self, connection_id: str) -> None:
        """The connection with its listings, their history, posts and outbox jobs (what ON DELETE
        CASCADE removes in SQL)."""
        connection = await self._session.get(MlsConnection, connection_id)
        if connection is None:
            return
        for listing in await DynamoListings(self._session).of_connection(connection_id):
            for history in await DynamoListings(self._session).history(listing.id):
                await self._session.delete(history)
            for post in await DynamoPosts(self._session).of_listing(listing.id):
                for job in await _jobs_of(self._session, post.id):
                    await self._session.delete(job)
                await self._session.delete(post)
            await self._session.delete(listing)
        await self._session.delete(connection)

    async def state_counts(self) -> dict[str, int]:
        items = await self._session.scan("sk = :sk", {":sk": s(primary_key(MlsConnection, "")[1])})
        return dict(Counter(item["state"]["S"] for item in items))


class DynamoListings:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def of_connection(self, connection_id: str) -> Sequence[Listing]:
        items = await _index(self._session, GSI1, f"CONN#{connection_id}", "LISTING#")
        return self._session.adopt_all(Listing, items)

    async def by_key(self, connection_id: str, listing_key: str) -> Listing | None:
        items = await self._session.query(
            "gsi1pk = :pk AND gsi1sk = :sk",
            {":pk": s(f"CONN#{connection_id}"), ":sk": s(f"LISTING#{listing_key}")},
            index=GSI1,
        )
        listings = self._session.adopt_all(Listing, items)
        return listings[0] if listings else None

    async def lock(self, listing_id: str) -> Listing | None:
        """No lock on DynamoDB: the commit is conditioned on the version read here, so a
        concurrent change of the listing makes this unit of work fail instead."""
        return await self._session.get(Listing, listing_id)

    async def history(self, listing_id: str) -> Sequence[ListingStatusHistory]:
        items = await self._session.query(
            "pk = :pk AND begins_with(sk, :prefix)",
            {":pk": s(f"LISTING#{listing_id}"), ":prefix": s("HISTORY#")},
        )
        return self._session.adopt_all(ListingStatusHistory, items)

    async def of_user(
        self,
        user_id: str,
        *,
        connection_id: str | None = None,
        status: ListingStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[Listing]:
        items = await _index(self._session, GSI2, f"USER#{user_id}", "LISTING#")
        listings = [
            listing
            for listing in self._session.adopt_all(Listing, items)
            if (connection_id is None or listing.mls_connection_id == connection_id)
            and (status is None or listing.status == status)
        ]
        return listings[offset : offset + limit]


class DynamoPlatformConnections:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def get(self, user_id: str, platform: str) -> PlatformConnection | None:
        items = await self._session.query(
            "gsi1pk = :pk AND gsi1sk = :sk",
            {":pk": s(f"USER#{user_id}"), ":sk": s(f"PLATFORM#{platform}")},
            index=GSI1,
        )
        found = self._session.adopt_all(PlatformConnection, items)
        return found[0] if found else None

    async def of_user(self, user_id: str) -> Sequence[PlatformConnection]:
        items = await _index(self._session, GSI1, f"USER#{user_id}", "PLATFORM#")
        return self._session.adopt_all(PlatformConnection, items)

    async def due_for_care(self, checked_before: datetime) -> Sequence[PlatformConnection]:
        # A scan, as for the gauges: run once per scheduled run, over a small item type.
        items = await self._session.scan(
            "sk = :sk", {":sk": s(primary_key(PlatformConnection, "")[1])}
        )
        due = [
            c
            for c in self._session.adopt_all(PlatformConnection, items)
            if c.state == ConnectionState.ACTIVE
            and (c.tokens_checked_at is None or c.tokens_checked_at <= checked_before)
        ]
        return sorted(due, key=lambda c: c.id)

    async def delete(self, user_id: str, platform: str) -> bool:
        connection = await self.get(user_id, platform)
        if connection is None:
            return False
        await self._session.delete(connection)
        return True

    async def lock(self, connection_id: str) -> PlatformConnection | None:
        """Optimistic, like `lock_listing`: whoever commits new tokens second fails."""
        return await self._session.get(PlatformConnection, connection_id)

    async def state_counts(self) -> dict[tuple[str, str], int]:
        items = await self._session.scan(
            "sk = :sk", {":sk": s(primary_key(PlatformConnection, "")[1])}
        )
        return dict(Counter((item["platform"]["S"], item["state"]["S"]) for item in items))


class DynamoPosts:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def of_listing(self, listing_id: str) -> Sequence[Post]:
        return self._session.adopt_all(
            Post, await _index(self._session, GSI1, f"LISTING#{listing_id}", "POST#")
        )

    async def of_user(
        self,
        user_id: str,
        *,
        listing_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Sequence[Post]:
        if listing_id is not None:
            listing = await self._session.get(Listing, listing_id)
            owned = listing is not None and listing.user_id == user_id
            listing_ids = [listing_id] if owned else []
        else:
            listing_ids = [
                li.id for li in await DynamoListings(self._session).of_user(user_id, limit=10**9)
            ]
        posts = [post for lid in listing_ids for post in await self.of_listing(lid)]
        posts.sort(key=lambda p: (p.created_at, p.id))
        return posts[offset : offset + limit]


class DynamoOutbox:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def enqueue(self, listing_id: str) -> int:
        """One job per published post of the listing that has none yet. Called with the listing's
        status change, whose version-checked write makes a concurrent second enqueue fail."""
        queued = 0
        for post in await DynamoPosts(self._session).of_listing(listing_id):
            if post.status != PostStatus.PUBLISHED or await _jobs_of(self._session, post.id):
                continue
            self._session.add(UnpublishJob(post_id=post.id))
            queued += 1
        return queued

    async def due(
        self, *, now: datetime, listing_ids: Collection[str] | None = None
    ) -> Sequence[tuple[UnpublishJob, Post, Listing]]:
        # gsi1sk is "<next_attempt_at>#<job id>": "$" sorts after "#", so this bound keeps every
        # job due at or before `now`, oldest first.
        items = await self._session.query(
            "gsi1pk = :pk AND gsi1sk < :due",
            {":pk": s(OUTBOX), ":due": s(iso(now) + "$")},
            index=GSI1,
        )
        wanted = set(listing_ids) if listing_ids is not None else None
        due: list[tuple[UnpublishJob, Post, Listing]] = []
        for job in self._session.adopt_all(UnpublishJob, items):
            post = await self._session.get(Post, job.post_id)
            if post is None:
                continue
            if wanted is not None and post.listing_id not in wanted:
                continue
            listing = await self._session.get(Listing, post.listing_id)
            if listing is not None:
                due.append((job, post, listing))
        return due

    async def claim(self, job_id: str, *, now: datetime, until: datetime) -> bool:
        pk, sk = primary_key(UnpublishJob, job_id)
        try:
            await self._session.client.update_item(
                TableName=self._session.tables.data_table,
                Key={"pk": s(pk), "sk": s(sk)},
                UpdateExpression="SET next_attempt_at = :until, gsi1sk = :due ADD version :one",
                ConditionExpression="next_attempt_at <= :now",
                ExpressionAttributeValues={
                    ":until": s(iso(until)),
                    ":due": s(f"{iso(until)}#{job_id}"),
                    ":now": s(iso(now)),
                    ":one": n(1),
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        self._session.forget(UnpublishJob, job_id)  # read it again, at its new version
        return True

    async def depth(self) -> tuple[int, datetime | None]:
        jobs = self._session.adopt_all(UnpublishJob, await _index(self._session, GSI1, OUTBOX))
        return len(jobs), min((job.created_at for job in jobs), default=None)


class DynamoRuns:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def newest(
        self,
        *,
        user_id: str | None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[SyncRun]:
        index, pk = (GSI1, ALL_RUNS) if user_id is None else (GSI2, f"RUNS#{user_id}")
        condition, values = f"{index}pk = :pk", {":pk": s(pk)}
        if before is not None:
            condition += f" AND {index}sk < :before"
            values[":before"] = s(iso(before))
        items = await self._session.query(
            condition, values, index=index, forward=False, limit=limit
        )
        return self._session.adopt_all(SyncRun, items)
