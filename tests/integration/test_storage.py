"""The storage contract: the repository functions behave the same on SQLite, PostgreSQL and
DynamoDB (moto's local server), so the sync and the management layer run on any of them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from conftest import ALL_BACKENDS
from mls_sync.domain.status import ConnectionState, PostStatus
from mls_sync.domain.status import ListingStatus as S
from mls_sync.store import api_keys
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.models import Listing, MlsConnection, Post, User
from mls_sync.store.open import is_dynamodb
from mls_sync.store.types import utcnow

pytestmark = pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)

CIPHER = TokenCipher([TokenCipher.generate_key()])


async def _user(db: Any, email: str) -> User:
    async with db.transaction() as session:
        return await repo.create_user(session, email)


async def _connection(db: Any, user_id: str, name: str = "") -> MlsConnection:
    async with db.transaction() as session:
        return await repo.create_mls_connection(
            session, CIPHER, user_id=user_id, base_url="http://mls.test/", token="t", name=name
        )


async def _listings(db: Any, connection: MlsConnection, *keys: str) -> list[Listing]:
    async with db.transaction() as session:
        return [
            await repo.add_listing(
                session, connection=connection, listing_key=key, mls_number=f"M-{key}"
            )
            for key in keys
        ]


async def test_users_are_found_by_email_id_and_api_key(db: Any) -> None:
    first = await _user(db, " Agent@Example.com ")
    second = await _user(db, "other@example.com")
    async with db.transaction() as session:
        user = await session.users.find(first.id)
        assert user is not None
        key = api_keys.issue(user)

    async with db.transaction() as session:
        found = await session.users.find("AGENT@example.com")
        assert found is not None and found.id == first.id
        assert found.email == "agent@example.com"
        assert await session.users.find("nobody@example.com") is None
        assert [u.id for u in await session.users.all()] == [first.id, second.id]
        authenticated = await api_keys.authenticate(session, key)
        assert authenticated is not None and authenticated.id == first.id
        assert await api_keys.authenticate(session, key + "x") is None


async def test_connections_belong_to_their_user_and_keep_their_state(db: Any) -> None:
    owner = await _user(db, "owner@example.com")
    stranger = await _user(db, "stranger@example.com")
    first = await _connection(db, owner.id, "first")
    second = await _connection(db, owner.id, "second")
    bookmark = utcnow().replace(microsecond=123456)

    async with db.transaction() as session:
        await repo.mark_feed(session, second.feed_id, ConnectionState.EXPIRED, "expired")
        await repo.save_bookmark(session, first.feed_id, bookmark, ["K1", "K2"])
        await repo.save_entity_event_sequence(session, first.feed_id, 42)
        await repo.save_entity_event_sequence(session, first.feed_id, 7)  # never backwards

    async with db.transaction() as session:
        assert await repo.get_mls_connection(session, first.id, user_id=stranger.id) is None
        stored = await repo.get_mls_connection(session, first.id, user_id=owner.id)
        assert stored is not None
        feed = await repo.feed_of(session, stored)
        assert (feed.bookmark_timestamp, feed.bookmark_keys) == (bookmark, ["K1", "K2"])
        assert feed.entity_event_sequence == 42
        assert CIPHER.decrypt(feed.credentials_encrypted) == "t"
        assert feed.base_url == "http://mls.test"
        names = [c.name for c in await session.connections.of_user(owner.id)]
        assert names == ["first", "second"]
        assert await session.connections.of_user(stranger.id) == []


async def test_listings_record_each_status_change_in_their_history(db: Any) -> None:
    user = await _user(db, "agent@example.com")
    connection = await _connection(db, user.id)
    other = await _connection(db, user.id)
    listing, _ = await _listings(db, connection, "K2", "K1")
    await _listings(db, other, "K3")

    for new_status in (S.PENDING, S.SOLD):
        async with db.transaction() as session:
            locked = await session.listings.lock(listing.id)
            assert locked is not None
            await repo.record_status_change(
                session, locked, new_status, mls_modified_at=None, sync_run_id="run-1"
            )

    async with db.transaction() as session:
        stored = await repo.get_listing(session, listing.id)
        assert stored is not None and stored.status == S.SOLD
        history = await session.listings.history(listing.id)
        assert [(h.old_status, h.new_status) for h in history] == [
            (S.ACTIVE, S.PENDING),
            (S.PENDING, S.SOLD),
        ]
        assert {h.sync_run_id for h in history} == {"run-1"}
        keys = [li.listing_key for li in await session.listings.of_connection(connection.id)]
        assert keys == ["K1", "K2"]
        found = await session.listings.by_key(connection.id, "K2")
        assert found is not None and found.id == listing.id
        assert await session.listings.by_key(connection.id, "K3") is None
        sold = await session.listings.of_user(user.id, status=S.SOLD)
        assert [li.id for li in sold] == [listing.id]
        of_other = await session.listings.of_user(user.id, connection_id=other.id)
        assert [li.listing_key for li in of_other] == ["K3"]
        assert len(await session.listings.of_user(user.id, limit=2, offset=1)) == 2


async def test_posts_and_platform_connections(db: Any) -> None:
    user = await _user(db, "agent@example.com")
    stranger = await _user(db, "stranger@example.com")
    [listing] = await _listings(db, await _connection(db, user.id), "K1")
    async with db.transaction() as session:
        for platform in ("facebook", "x"):
            await repo.add_post(session, listing=listing, platform=platform, platform_post_id="p")
        await repo.upsert_platform_connection(
            session, CIPHER, user_id=user.id, platform="x", access_token="a1", refresh_token="r1"
        )
    async with db.transaction() as session:
        await repo.upsert_platform_connection(
            session, CIPHER, user_id=user.id, platform="x", access_token="a2"
        )
        await repo.upsert_platform_connection(
            session, CIPHER, user_id=user.id, platform="facebook", access_token="f"
        )

    async with db.transaction() as session:
        posts = await session.posts.of_listing(listing.id)
        assert sorted(p.platform for p in posts) == ["facebook", "x"]
        assert {p.status for p in posts} == {PostStatus.PUBLISHED}
        assert len(await session.posts.of_user(user.id)) == 2
        assert await session.posts.of_user(stranger.id) == []
        assert await session.posts.of_user(stranger.id, listing_id=listing.id) == []
        x = await session.platforms.get(user.id, "x")
        assert x is not None
        assert CIPHER.decrypt(x.access_token_encrypted) == "a2"
        assert x.refresh_token_encrypted is None  # replaced, not kept, by an upsert
        platforms = await session.platforms.of_user(user.id)
        assert [p.platform for p in platforms] == ["facebook", "x"]
        assert await session.platforms.delete(user.id, "x") is True
        assert await session.platforms.delete(user.id, "x") is False
    async with db.transaction() as session:
        assert await session.platforms.get(user.id, "x") is None


async def test_token_care_finds_active_connections_not_looked_at_since_a_time(db: Any) -> None:
    user = await _user(db, "agent@example.com")
    now = utcnow()
    async with db.transaction() as session:
        for platform in ("instagram", "facebook", "x", "linkedin"):
            await repo.upsert_platform_connection(
                session,
                CIPHER,
                user_id=user.id,
                platform=platform,
                access_token=f"{platform}-token",
                expires_at=now + timedelta(days=3),
            )
    async with db.transaction() as session:
        rows = {c.platform: c for c in await session.platforms.of_user(user.id)}
        rows["facebook"].tokens_checked_at = now - timedelta(hours=1)  # looked at recently
        rows["x"].tokens_checked_at = now - timedelta(days=2)  # due again
        rows["linkedin"].state = "expired"  # the user must reconnect: nothing to care for
        for row in rows.values():
            session.add(row)
    async with db.transaction() as session:
        found = await session.platforms.due_for_care(now - timedelta(days=1))
        assert sorted(c.platform for c in found) == ["instagram", "x"]


async def test_outbox_jobs_are_queued_once_due_in_order_and_claimed_once(db: Any) -> None:
    user = await _user(db, "agent@example.com")
    connection = await _connection(db, user.id)
    sold, other = await _listings(db, connection, "K1", "K2")
    async with db.transaction() as session:
        for listing in (sold, other):
            for platform in ("facebook", "x"):
                await repo.add_post(
                    session, listing=listing, platform=platform, platform_post_id=platform
                )
        gone = await repo.add_post(
            session, listing=sold, platform="pinterest", platform_post_id="1"
        )
        gone.status = PostStatus.UNPUBLISHED

    async with db.transaction() as session:
        assert await session.outbox.enqueue(sold.id) == 2
    async with db.transaction() as session:
        assert await session.outbox.enqueue(sold.id) == 0  # already queued
        assert await session.outbox.enqueue(other.id) == 2

    now = utcnow() + timedelta(seconds=1)
    async with db.transaction() as session:
        assert (await session.outbox.depth())[0] == 4
        due = await session.outbox.due(now=now, listing_ids=[sold.id])
        assert sorted(post.platform for _, post, _ in due) == ["facebook", "x"]
        assert {listing.id for _, _, listing in due} == {sold.id}
        assert len(await session.outbox.due(now=now)) == 4
        assert await session.outbox.due(now=now - timedelta(hours=1)) == []
        job = due[0][0]

    until = now + timedelta(minutes=5)
    async with db.transaction() as session:
        assert await session.outbox.claim(job.id, now=now, until=until) is True
    async with db.transaction() as session:
        assert await session.outbox.claim(job.id, now=now, until=until) is False
        still_due = await session.outbox.due(now=now, listing_ids=[sold.id])
        assert [j.id for j, _, _ in still_due] == [due[1][0].id]
        # Due again once the claim's lease has run out.
        later = await session.outbox.due(now=until, listing_ids=[sold.id])
        assert {j.id for j, _, _ in later} == {due[0][0].id, due[1][0].id}


async def test_deleting_a_connection_removes_its_listings_posts_and_jobs(db: Any) -> None:
    user = await _user(db, "agent@example.com")
    doomed = await _connection(db, user.id)
    kept = await _connection(db, user.id)
    [listing] = await _listings(db, doomed, "K1")
    [survivor] = await _listings(db, kept, "K1")
    async with db.transaction() as session:
        post = await repo.add_post(session, listing=listing, platform="x", platform_post_id="1")
        await repo.add_post(session, listing=survivor, platform="x", platform_post_id="2")
        await session.outbox.enqueue(listing.id)

    async with db.transaction() as session:
        await session.connections.delete(doomed.id)

    async with db.transaction() as session:
        assert await repo.get_mls_connection(session, doomed.id) is None
        assert await repo.get_listing(session, listing.id) is None
        assert await session.get(Post, post.id) is None
        assert await session.outbox.depth() == (0, None)
        assert [li.id for li in await session.listings.of_user(user.id)] == [survivor.id]


async def test_run_history_is_newest_first_per_user_and_pages_on_start(db: Any) -> None:
    user = await _user(db, "agent@example.com")
    stranger = await _user(db, "stranger@example.com")
    runs = []
    for user_id in (user.id, None, user.id):
        async with db.transaction() as session:
            run = await repo.start_run(
                session, trigger="cron", scope="connection", scope_id=None, user_id=user_id
            )
            runs.append(run)
    async with db.transaction() as session:
        await repo.finish_run(
            session,
            runs[0].id,
            success=True,
            message="done",
            totals={"updatedListings": 1},
            errors=[],
            status_changes=[{"listingId": "L", "newStatus": "sold"}],
        )

    async with db.transaction() as session:
        everyone = await session.runs.newest(user_id=None)
        assert [r.id for r in everyone] == [r.id for r in reversed(runs)]
        mine = await session.runs.newest(user_id=user.id)
        assert [r.id for r in mine] == [runs[2].id, runs[0].id]
        older = await session.runs.newest(user_id=None, before=runs[2].started_at, limit=1)
        assert [r.id for r in older] == [runs[1].id]
        assert await repo.get_run(session, runs[0].id, user_id=stranger.id) is None
        finished = await repo.get_run(session, runs[0].id, user_id=user.id)
        assert finished is not None
        assert (finished.state, finished.success, finished.totals) == (
            "finished",
            True,
            {"updatedListings": 1},
        )
        assert finished.status_changes == [{"listingId": "L", "newStatus": "sold"}]
        assert finished.finished_at is not None


async def test_leases_are_taken_once_renewed_by_their_holder_and_taken_over_when_expired(
    db: Any,
) -> None:
    now, ttl = utcnow(), timedelta(seconds=30)
    async with db.transaction() as session:
        assert await session.leases.take("C1", "a", now=now, ttl=ttl) is True
    async with db.transaction() as session:
        assert await session.leases.take("C1", "b", now=now, ttl=ttl) is False
        assert await session.leases.renew("C1", "b", now=now, ttl=ttl) is False
        assert await session.leases.renew("C1", "a", now=now, ttl=ttl * 2) is True
        await session.leases.release("C1", "b")  # not theirs: a no-op
    async with db.transaction() as session:
        lease = await session.leases.of("C1")
        assert lease is not None and lease.holder == "a"
        assert lease.expires_at == now + ttl * 2
        # Still a's at the first expiry (renewed); b takes it over once it lapsed.
        assert await session.leases.take("C1", "b", now=now + ttl, ttl=ttl) is False
    async with db.transaction() as session:
        assert await session.leases.take("C1", "b", now=now + ttl * 2, ttl=ttl) is True
    async with db.transaction() as session:
        assert await session.leases.renew("C1", "a", now=now, ttl=ttl) is False
        await session.leases.release("C1", "b")
    async with db.transaction() as session:
        assert await session.leases.of("C1") is None
        assert await session.leases.take("C1", "a", now=now, ttl=ttl) is True


async def test_many_leases_are_given_back_at_once_only_where_they_are_the_holders(
    db: Any,
) -> None:
    now, ttl = utcnow(), timedelta(seconds=30)
    async with db.transaction() as session:
        await session.leases.take_many(["C1", "C2"], "a", now=now, ttl=ttl)
        await session.leases.take("C3", "b", now=now, ttl=ttl)
    async with db.transaction() as session:
        await session.leases.release_many(["C1", "C2", "C3", "C9"], "a")  # C3 is b's
    async with db.transaction() as session:
        assert await session.leases.of("C1") is None and await session.leases.of("C2") is None
        lease = await session.leases.of("C3")
        assert lease is not None and lease.holder == "b"
        await session.leases.release_many([], "a")


async def test_many_leases_are_taken_at_once_each_only_when_free_naming_a_dead_holder(
    db: Any,
) -> None:
    """`take_many` takes every free or lapsed lease, leaves a live one to its holder, and says
    whose lapsed lease it took over (the runtime then takes over that holder's claims)."""
    now, ttl = utcnow(), timedelta(seconds=30)
    async with db.transaction() as session:
        assert await session.leases.take("live", "b", now=now, ttl=ttl)
        assert await session.leases.take("lapsed", "dead", now=now - ttl * 2, ttl=ttl)
        assert await session.leases.take("mine", "a", now=now - ttl * 2, ttl=ttl)
    async with db.transaction() as session:
        took = await session.leases.take_many(
            ["free", "live", "lapsed", "mine", "free"], "a", now=now, ttl=ttl
        )
    assert took == {"free": None, "lapsed": "dead", "mine": None}
    async with db.transaction() as session:
        for connection_id, holder in [("free", "a"), ("live", "b"), ("lapsed", "a")]:
            lease = await session.leases.of(connection_id)
            assert lease is not None and lease.holder == holder
        assert await session.leases.take_many([], "a", now=now, ttl=ttl) == {}
        assert await session.leases.take_many(["free"], "c", now=now, ttl=ttl) == {}


async def test_a_commit_over_a_stale_read_fails_and_writes_nothing(db: Any) -> None:
    """Optimistic concurrency on DynamoDB: a status change decided on a listing someone else
    changed meanwhile is refused as a whole (history, outbox and all), so the same change is
    never recorded twice. (SQL serialises the two with the row lock of `lock_listing`.)"""
    if not is_dynamodb(db):
        pytest.skip("SQL backends lock the row instead (lock_listing: SELECT ... FOR UPDATE)")
    from mls_sync.store.dynamo.session import StaleWriteError

    user = await _user(db, "agent@example.com")
    [listing] = await _listings(db, await _connection(db, user.id), "K1")
    async with db.transaction() as session:
        await repo.add_post(session, listing=listing, platform="x", platform_post_id="1")

    with pytest.raises(StaleWriteError, match=f"LISTING#{listing.id}"):
        async with db.transaction() as slow:
            stale = await slow.listings.lock(listing.id)
            assert stale is not None
            async with db.transaction() as fast:
                fresh = await fast.listings.lock(listing.id)
                assert fresh is not None
                await repo.record_status_change(
                    fast, fresh, S.SOLD, mls_modified_at=None, sync_run_id="fast"
                )
                await fast.outbox.enqueue(listing.id)
            await repo.record_status_change(
                slow, stale, S.SOLD, mls_modified_at=None, sync_run_id="slow"
            )
            await slow.outbox.enqueue(listing.id)

    async with db.transaction() as session:
        history = await session.listings.history(listing.id)
        assert [(h.new_status, h.sync_run_id) for h in history] == [(S.SOLD, "fast")]
        assert (await session.outbox.depth())[0] == 1

    with pytest.raises(StaleWriteError):  # a second insert of the same item, too
        async with db.transaction() as session:
            session.add(User(id=user.id, email="again@example.com"))
