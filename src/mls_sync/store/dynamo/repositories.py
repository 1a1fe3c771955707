"""The DynamoDB repositories: one class per aggregate, each implementing its Protocol of
store/interface.py over a `DynamoSession` (the unit of work, store/dynamo/unit_of_work.py).

Reads by key are consistent GetItems; lists come from the index the table layout gives them
(schema.py), never from a Scan (the table holds every feed's replica). Writes go through the
session's unit of work, except an outbox claim, which is a single conditional write like the
SQL backend's UPDATE ... WHERE. The feeds and their replicas are in store/dynamo/feeds.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from mls_sync.domain.status import ConnectionState, ListingStatus, PostStatus
from mls_sync.store.dynamo.codec import Item, iso, n, s
from mls_sync.store.dynamo.schema import (
    ALL_RUNS,
    GSI1,
    GSI2,
    GSI3,
    OUTBOX,
    TYPE_PLATFORMS,
    TYPE_USERS,
    claims_of,
    job_due,
    primary_key,
)
from mls_sync.store.dynamo.session import DynamoSession, each
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


async def index_items(
    session: DynamoSession, index: str, pk: str, prefix: str = "", **kwargs: Any
) -> list[dict[str, Any]]:
    """An index partition's items whose sort key starts with `prefix`, in sort-key order."""
    if not prefix:  # begins_with refuses an empty string
        return await session.query(f"{index}pk = :pk", {":pk": s(pk)}, index=index, **kwargs)
    return await session.query(
        _BEGINS.format(index), {":pk": s(pk), ":prefix": s(prefix)}, index=index, **kwargs
    )


def _flat(parts: Iterable[list[Item]]) -> list[Item]:
    return [item for part in parts for item in part]


async def _jobs_of(session: DynamoSession, post_id: str) -> list[UnpublishJob]:
    return session.adopt_all(UnpublishJob, await index_items(session, GSI2, f"JOBPOST#{post_id}"))


class DynamoUsers:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def find(self, id_or_email: str) -> User | None:
        if "@" in id_or_email:
            email = id_or_email.strip().lower()
            users = self._session.adopt_all(
                User, await index_items(self._session, GSI1, f"EMAIL#{email}")
            )
            return users[0] if users else None
        return await self._session.get(User, id_or_email)

    async def all(self) -> Sequence[User]:
        items = await index_items(self._session, GSI3, TYPE_USERS, "USER#")
        return self._session.adopt_all(User, items)

    async def by_api_key_hash(self, key_hash: str) -> User | None:
        users = self._session.adopt_all(
            User, await index_items(self._session, GSI2, f"APIKEY#{key_hash}")
        )
        return users[0] if users else None


class DynamoMlsConnections:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def of_user(self, user_id: str) -> Sequence[MlsConnection]:
        items = await index_items(self._session, GSI1, f"USER#{user_id}", "CONN#")
        return self._session.adopt_all(MlsConnection, items)

    async def of_feed(self, feed_id: str) -> Sequence[MlsConnection]:
        items = await index_items(self._session, GSI3, f"FEED#{feed_id}", "CONN#")
        return self._session.adopt_all(MlsConnection, items)

    async def holdings(self, feed_id: str) -> dict[str, int]:
        held = Counter(
            listing.mls_connection_id
            for listing in await DynamoListings(self._session).of_feed(feed_id)
        )
        return {member.id: held[member.id] for member in await self.of_feed(feed_id)}

    async def holdings_of(self, feed_ids: Collection[str]) -> dict[str, dict[str, int]]:
        return {feed_id: await self.holdings(feed_id) for feed_id in sorted(set(feed_ids))}

    async def with_ids(self, connection_ids: Collection[str]) -> Sequence[MlsConnection]:
        found = [await self._session.get(MlsConnection, cid) for cid in sorted(set(connection_ids))]
        return [connection for connection in found if connection is not None]

    async def mark_feed(self, feed_id: str, state: ConnectionState, message: str | None) -> None:
        """Each member changed in the unit of work: written, version-checked, at its commit."""
        for connection in await self.of_feed(feed_id):
            connection.state = state
            connection.state_message = message

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
        # One count per state partition (the index that serves active_ids), nothing read out.
        counts = {
            state.value: await self._session.count(
                _BEGINS.format(GSI2),
                {":pk": s(f"CONNSTATE#{state.value}"), ":prefix": s("CONN#")},
                index=GSI2,
            )
            for state in ConnectionState
        }
        return {state: count for state, count in counts.items() if count}


class DynamoListings:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def of_connection(self, connection_id: str) -> Sequence[Listing]:
        items = await index_items(self._session, GSI1, f"CONN#{connection_id}", "LISTING#")
        return self._session.adopt_all(Listing, items)

    async def by_key(self, connection_id: str, listing_key: str) -> Listing | None:
        items = await self._session.query(
            "gsi1pk = :pk AND gsi1sk = :sk",
            {":pk": s(f"CONN#{connection_id}"), ":sk": s(f"LISTING#{listing_key}")},
            index=GSI1,
        )
        listings = self._session.adopt_all(Listing, items)
        return listings[0] if listings else None

    async def held_in_feed(self, feed_id: str, keys: Collection[str]) -> Sequence[Listing]:
        """One exact-match query per ListingKey (the feed's index partition holds every member's
        listings): the cost follows the page of records, not the members or their listings."""

        async def holders(key: str) -> list[Item]:
            return await self._session.query(
                "gsi3pk = :pk AND gsi3sk = :sk",
                {":pk": s(f"FEED#{feed_id}"), ":sk": s(f"LISTING#{key}")},
                index=GSI3,
            )

        found = await each(sorted(set(keys)), holders)
        return self._session.adopt_all(Listing, _flat(found))

    async def of_feed(self, feed_id: str) -> Sequence[Listing]:
        items = await index_items(self._session, GSI3, f"FEED#{feed_id}", "LISTING#")
        return self._session.adopt_all(Listing, items)

    async def lock(self, listing_id: str) -> Listing | None:
        """No lock on DynamoDB: the commit is conditioned on the version read here, so a
        concurrent change of the listing makes this unit of work fail instead."""
        return await self._session.get(Listing, listing_id)

    async def lock_many(self, listing_ids: Collection[str]) -> dict[str, Listing]:
        locked = {lid: await self.lock(lid) for lid in sorted(set(listing_ids))}
        return {lid: listing for lid, listing in locked.items() if listing is not None}

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
        items = await index_items(self._session, GSI2, f"USER#{user_id}", "LISTING#")
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
        items = await index_items(self._session, GSI1, f"USER#{user_id}", "PLATFORM#")
        return self._session.adopt_all(PlatformConnection, items)

    async def due_for_care(self, checked_before: datetime) -> Sequence[PlatformConnection]:
        # Every platform connection, as for the gauges: once per scheduled run, a small type.
        return [
            c
            for c in await self._all()
            if c.state == ConnectionState.ACTIVE
            and (c.tokens_checked_at is None or c.tokens_checked_at <= checked_before)
        ]

    async def _all(self) -> list[PlatformConnection]:
        """By id."""
        items = await index_items(self._session, GSI2, TYPE_PLATFORMS, "PLATFORM#")
        return self._session.adopt_all(PlatformConnection, items)

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
        return dict(Counter((c.platform, c.state) for c in await self._all()))


class DynamoPosts:
    def __init__(self, session: DynamoSession) -> None:
        self._session = session

    async def of_listing(self, listing_id: str) -> Sequence[Post]:
        return self._session.adopt_all(
            Post, await index_items(self._session, GSI1, f"LISTING#{listing_id}", "POST#")
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

    async def claim(
        self, job_id: str, *, now: datetime, until: datetime, by: str | None = None
    ) -> bool:
        return await self._reschedule(
            job_id, until, by, condition="next_attempt_at <= :now", values={":now": s(iso(now))}
        )

    async def release_claims(self, by: str, *, now: datetime) -> int:
        """One conditional write per job, sent at once like a claim: a job whose claim
        changed hands since the query stays with its new holder."""
        items = await index_items(self._session, GSI3, claims_of(by), "JOB#")
        job_ids = [item["id"]["S"] for item in items]

        async def release(job_id: str) -> bool:
            return await self._reschedule(
                job_id, now, None, condition="claimed_by = :holder", values={":holder": s(by)}
            )

        return sum(await each(job_ids, release))

    async def _reschedule(
        self,
        job_id: str,
        due: datetime,
        by: str | None,
        *,
        condition: str,
        values: dict[str, Any],
    ) -> bool:
        """The job due at `due`, claimed by `by` (None: by nobody), if `condition` holds:
        a single write (the index keys with it), as SQL's UPDATE ... WHERE."""
        pk, sk = primary_key(UnpublishJob, job_id)
        sets = ["next_attempt_at = :due_at", "gsi1sk = :due"]
        values = {**values, ":due_at": s(iso(due)), ":due": s(job_due(job_id, due)), ":one": n(1)}
        if by is None:
            holder = " REMOVE claimed_by, gsi3pk, gsi3sk"
        else:
            sets += ["claimed_by = :by", "gsi3pk = :claims", "gsi3sk = :job"]
            values.update({":by": s(by), ":claims": s(claims_of(by)), ":job": s(f"JOB#{job_id}")})
            holder = ""
        try:
            await self._session.client.update_item(
                TableName=self._session.tables.data_table,
                Key={"pk": s(pk), "sk": s(sk)},
                UpdateExpression=f"SET {', '.join(sets)}{holder} ADD version :one",
                ConditionExpression=f"attribute_exists(pk) AND {condition}",
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        self._session.forget(UnpublishJob, job_id)  # read it again, at its new version
        return True

    async def depth(self) -> tuple[int, datetime | None]:
        jobs = self._session.adopt_all(UnpublishJob, await index_items(self._session, GSI1, OUTBOX))
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

    async def finish(self, run_id: str, values: dict[str, Any]) -> None:
        run = await self._session.get(SyncRun, run_id)
        if run is not None:  # written, version-checked, at the commit
            for name, value in values.items():
                setattr(run, name, value)
