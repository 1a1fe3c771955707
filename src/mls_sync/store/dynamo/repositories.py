"""The DynamoDB twins of store/repositories.py, registered on its `@singledispatch` functions
for `DynamoSession`: callers keep writing `repo.fn(session, ...)` on either backend.

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
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
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


# users


@repo.find_user.register
async def find_user(session: DynamoSession, id_or_email: str) -> User | None:
    if "@" in id_or_email:
        email = id_or_email.strip().lower()
        users = session.adopt_all(User, await _index(session, GSI1, f"EMAIL#{email}"))
        return users[0] if users else None
    return await session.get(User, id_or_email)


@repo.list_users.register
async def list_users(session: DynamoSession) -> Sequence[User]:
    items = await session.scan("sk = :sk", {":sk": s(primary_key(User, "")[1])})
    return sorted(session.adopt_all(User, items), key=lambda u: (u.created_at, u.id))


@repo.user_by_api_key_hash.register
async def user_by_api_key_hash(session: DynamoSession, key_hash: str) -> User | None:
    users = session.adopt_all(User, await _index(session, GSI2, f"APIKEY#{key_hash}"))
    return users[0] if users else None


# MLS connections


@repo.user_connections.register
async def user_connections(session: DynamoSession, user_id: str) -> Sequence[MlsConnection]:
    items = await _index(session, GSI1, f"USER#{user_id}", "CONN#")
    return session.adopt_all(MlsConnection, items)


@repo.active_connection_ids.register
async def active_connection_ids(session: DynamoSession) -> list[str]:
    items = await _index(session, GSI2, f"CONNSTATE#{ConnectionState.ACTIVE}", "CONN#")
    return [c.id for c in session.adopt_all(MlsConnection, items)]


@repo.delete_mls_connection.register
async def delete_mls_connection(session: DynamoSession, connection_id: str) -> None:
    """The connection with its listings, their history, posts and outbox jobs (what ON DELETE
    CASCADE removes in SQL)."""
    connection = await session.get(MlsConnection, connection_id)
    if connection is None:
        return
    for listing in await connection_listings(session, connection_id):
        for history in await status_history(session, listing.id):
            await session.delete(history)
        for post in await listing_posts(session, listing.id):
            for job in await _jobs_of(session, post.id):
                await session.delete(job)
            await session.delete(post)
        await session.delete(listing)
    await session.delete(connection)


# listings


@repo.connection_listings.register
async def connection_listings(session: DynamoSession, connection_id: str) -> Sequence[Listing]:
    items = await _index(session, GSI1, f"CONN#{connection_id}", "LISTING#")
    return session.adopt_all(Listing, items)


@repo.find_listing_by_key.register
async def find_listing_by_key(
    session: DynamoSession, connection_id: str, listing_key: str
) -> Listing | None:
    items = await session.query(
        "gsi1pk = :pk AND gsi1sk = :sk",
        {":pk": s(f"CONN#{connection_id}"), ":sk": s(f"LISTING#{listing_key}")},
        index=GSI1,
    )
    listings = session.adopt_all(Listing, items)
    return listings[0] if listings else None


@repo.lock_listing.register
async def lock_listing(session: DynamoSession, listing_id: str) -> Listing | None:
    """No lock on DynamoDB: the commit is conditioned on the version read here, so a
    concurrent change of the listing makes this unit of work fail instead."""
    return await session.get(Listing, listing_id)


@repo.status_history.register
async def status_history(session: DynamoSession, listing_id: str) -> Sequence[ListingStatusHistory]:
    items = await session.query(
        "pk = :pk AND begins_with(sk, :prefix)",
        {":pk": s(f"LISTING#{listing_id}"), ":prefix": s("HISTORY#")},
    )
    return session.adopt_all(ListingStatusHistory, items)


@repo.user_listings.register
async def user_listings(
    session: DynamoSession,
    user_id: str,
    *,
    connection_id: str | None = None,
    status: ListingStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Listing]:
    items = await _index(session, GSI2, f"USER#{user_id}", "LISTING#")
    listings = [
        listing
        for listing in session.adopt_all(Listing, items)
        if (connection_id is None or listing.mls_connection_id == connection_id)
        and (status is None or listing.status == status)
    ]
    return listings[offset : offset + limit]


# platform connections and posts


@repo.platform_connection.register
async def platform_connection(
    session: DynamoSession, user_id: str, platform: str
) -> PlatformConnection | None:
    items = await session.query(
        "gsi1pk = :pk AND gsi1sk = :sk",
        {":pk": s(f"USER#{user_id}"), ":sk": s(f"PLATFORM#{platform}")},
        index=GSI1,
    )
    found = session.adopt_all(PlatformConnection, items)
    return found[0] if found else None


@repo.upsert_platform_connection.register
async def upsert_platform_connection(
    session: DynamoSession,
    cipher: TokenCipher,
    *,
    user_id: str,
    platform: str,
    access_token: str,
    refresh_token: str | None = None,
    expires_at: datetime | None = None,
    login: str | None = None,
) -> PlatformConnection:
    connection = await platform_connection(session, user_id, platform)
    if connection is None:
        connection = PlatformConnection(user_id=user_id, platform=platform)
        session.add(connection)
    repo.store_platform_tokens(
        connection,
        cipher,
        access_token=access_token,
        refresh_token=None,
        expires_at=expires_at,
    )
    connection.refresh_token_encrypted = cipher.encrypt(refresh_token) if refresh_token else None
    connection.login = login
    connection.tokens_checked_at = None
    return connection


@repo.user_platform_connections.register
async def user_platform_connections(
    session: DynamoSession, user_id: str
) -> Sequence[PlatformConnection]:
    items = await _index(session, GSI1, f"USER#{user_id}", "PLATFORM#")
    return session.adopt_all(PlatformConnection, items)


@repo.platform_connections_due_for_care.register
async def platform_connections_due_for_care(
    session: DynamoSession, checked_before: datetime
) -> Sequence[PlatformConnection]:
    # A scan, as for the gauges: run once per scheduled run, over a small item type.
    items = await session.scan("sk = :sk", {":sk": s(primary_key(PlatformConnection, "")[1])})
    due = [
        c
        for c in session.adopt_all(PlatformConnection, items)
        if c.state == ConnectionState.ACTIVE
        and (c.tokens_checked_at is None or c.tokens_checked_at <= checked_before)
    ]
    return sorted(due, key=lambda c: c.id)


@repo.delete_platform_connection.register
async def delete_platform_connection(session: DynamoSession, user_id: str, platform: str) -> bool:
    connection = await platform_connection(session, user_id, platform)
    if connection is None:
        return False
    await session.delete(connection)
    return True


@repo.lock_platform_connection.register
async def lock_platform_connection(
    session: DynamoSession, connection_id: str
) -> PlatformConnection | None:
    """Optimistic, like `lock_listing`: whoever commits new tokens second fails."""
    return await session.get(PlatformConnection, connection_id)


@repo.listing_posts.register
async def listing_posts(session: DynamoSession, listing_id: str) -> Sequence[Post]:
    return session.adopt_all(Post, await _index(session, GSI1, f"LISTING#{listing_id}", "POST#"))


@repo.user_posts.register
async def user_posts(
    session: DynamoSession,
    user_id: str,
    *,
    listing_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Post]:
    if listing_id is not None:
        listing = await repo.get_listing(session, listing_id, user_id=user_id)
        listing_ids = [listing.id] if listing is not None else []
    else:
        listing_ids = [li.id for li in await user_listings(session, user_id, limit=10**9)]
    posts = [post for lid in listing_ids for post in await listing_posts(session, lid)]
    posts.sort(key=lambda p: (p.created_at, p.id))
    return posts[offset : offset + limit]


# the unpublish outbox


async def _jobs_of(session: DynamoSession, post_id: str) -> list[UnpublishJob]:
    return session.adopt_all(UnpublishJob, await _index(session, GSI2, f"JOBPOST#{post_id}"))


@repo.enqueue_unpublish_jobs.register
async def enqueue_unpublish_jobs(session: DynamoSession, listing_id: str) -> int:
    """One job per published post of the listing that has none yet. Called with the listing's
    status change, whose version-checked write makes a concurrent second enqueue fail."""
    queued = 0
    for post in await listing_posts(session, listing_id):
        if post.status != PostStatus.PUBLISHED or await _jobs_of(session, post.id):
            continue
        session.add(UnpublishJob(post_id=post.id))
        queued += 1
    return queued


@repo.due_unpublish_jobs.register
async def due_unpublish_jobs(
    session: DynamoSession, *, now: datetime, listing_ids: Collection[str] | None = None
) -> Sequence[tuple[UnpublishJob, Post, Listing]]:
    # gsi1sk is "<next_attempt_at>#<job id>": "$" sorts after "#", so this bound keeps every
    # job due at or before `now`, oldest first.
    items = await session.query(
        "gsi1pk = :pk AND gsi1sk < :due",
        {":pk": s(OUTBOX), ":due": s(iso(now) + "$")},
        index=GSI1,
    )
    wanted = set(listing_ids) if listing_ids is not None else None
    due: list[tuple[UnpublishJob, Post, Listing]] = []
    for job in session.adopt_all(UnpublishJob, items):
        post = await session.get(Post, job.post_id)
        if post is None:
            continue
        if wanted is not None and post.listing_id not in wanted:
            continue
        listing = await session.get(Listing, post.listing_id)
        if listing is not None:
            due.append((job, post, listing))
    return due


@repo.claim_unpublish_job.register
async def claim_unpublish_job(
    session: DynamoSession, job_id: str, *, now: datetime, until: datetime
) -> bool:
    pk, sk = primary_key(UnpublishJob, job_id)
    try:
        await session.client.update_item(
            TableName=session.tables.data_table,
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
    session.forget(UnpublishJob, job_id)  # read it again, at its new version
    return True


# run history


@repo.list_runs.register
async def list_runs(
    session: DynamoSession,
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
    items = await session.query(condition, values, index=index, forward=False, limit=limit)
    return session.adopt_all(SyncRun, items)


# monitoring gauges (scans: fine for a scrape of a small fleet, not made for large ones)


@repo.mls_connection_state_counts.register
async def mls_connection_state_counts(session: DynamoSession) -> dict[str, int]:
    items = await session.scan("sk = :sk", {":sk": s(primary_key(MlsConnection, "")[1])})
    return dict(Counter(item["state"]["S"] for item in items))


@repo.platform_connection_state_counts.register
async def platform_connection_state_counts(
    session: DynamoSession,
) -> dict[tuple[str, str], int]:
    items = await session.scan("sk = :sk", {":sk": s(primary_key(PlatformConnection, "")[1])})
    return dict(Counter((item["platform"]["S"], item["state"]["S"]) for item in items))


@repo.outbox_depth.register
async def outbox_depth(session: DynamoSession) -> tuple[int, datetime | None]:
    jobs = session.adopt_all(UnpublishJob, await _index(session, GSI1, OUTBOX))
    return len(jobs), min((job.created_at for job in jobs), default=None)
