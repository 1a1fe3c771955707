"""The storage contract of MLS feeds: a feed's replica, its members and the listings held in
it behave the same on SQLite, PostgreSQL and DynamoDB (moto's local server), so replication,
reconciliation and the fan-out to every holder run on any of them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from conftest import ALL_BACKENDS
from mls_sync.domain.replica import ReplicaRow
from mls_sync.domain.status import ConnectionState
from mls_sync.domain.status import ListingStatus as S
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.models import Listing, MlsConnection, MlsFeed, Post, UnpublishJob, User
from mls_sync.store.open import is_dynamodb
from mls_sync.store.types import utcnow

pytestmark = pytest.mark.parametrize("database_url", ALL_BACKENDS, indirect=True)

CIPHER = TokenCipher([TokenCipher.generate_key()])


async def _user(db: Any, email: str) -> User:
    async with db.transaction() as session:
        return await repo.create_user(session, email)


async def _shared_feed(db: Any, name: str = "shared") -> MlsFeed:
    """The operator's feed: one credential, any number of members."""
    async with db.transaction() as session:
        return await repo.create_feed(
            session, CIPHER, owner_user_id=None, base_url="http://mls.test/", secret="t", name=name
        )


async def _join(db: Any, user: User, feed: MlsFeed, agent: str | None = None) -> MlsConnection:
    async with db.transaction() as session:
        return await repo.join_feed(
            session, user_id=user.id, feed=feed, name=user.email, agent_mls_id=agent
        )


async def _private(db: Any, user: User) -> MlsConnection:
    """A connection with its own credentials: a private feed and its one membership."""
    async with db.transaction() as session:
        return await repo.create_mls_connection(
            session, CIPHER, user_id=user.id, base_url="http://own.test", token="own"
        )


async def _listings(db: Any, connection: MlsConnection, *keys: str) -> list[Listing]:
    async with db.transaction() as session:
        return [
            await repo.add_listing(
                session, connection=connection, listing_key=key, mls_number=f"M-{key}"
            )
            for key in keys
        ]


async def _sell(db: Any, listing: Listing) -> None:
    """The listing sold: a history entry, and an unpublish job for its published post."""
    async with db.transaction() as session:
        locked = await session.listings.lock(listing.id)
        assert locked is not None
        await repo.record_status_change(
            session, locked, S.SOLD, mls_modified_at=None, sync_run_id="run"
        )
        assert await session.outbox.enqueue(listing.id) == 1
    async with db.transaction() as session:
        assert len(await session.listings.history(listing.id)) == 1
        assert (await session.outbox.depth())[0] == 1


def _row(
    key: str,
    *,
    listing_id: str | None = None,
    agent: str | None = None,
    office: str | None = None,
    status: str | None = "Active",
    modified: datetime | None = None,
    gone: bool = False,
) -> ReplicaRow:
    return ReplicaRow(
        listing_key=key,
        listing_id=listing_id,
        standard_status=status,
        mls_status=None,
        modification_timestamp=modified,
        list_agent_mls_id=agent,
        list_office_mls_id=office,
        gone=gone,
    )


async def _upsert(db: Any, feed_id: str, *rows: ReplicaRow, seen_at: datetime) -> None:
    async with db.transaction() as session:
        await session.replica.upsert(feed_id, list(rows), seen_at=seen_at)


# the replica


async def test_an_upsert_replaces_each_row_by_key_and_a_repeated_key_keeps_its_last_row(
    db: Any,
) -> None:
    """A record's row is what the feed said last: every field replaced, none kept from
    before (an agent removed is no longer the row's agent)."""
    feed = await _shared_feed(db)
    first, later = utcnow() - timedelta(hours=1), utcnow()
    await _upsert(
        db,
        feed.id,
        _row("K1", listing_id="L1", agent="A1", office="O1", modified=first),
        _row("K2", listing_id="L2", agent="A1"),
        seen_at=first,
    )

    await _upsert(
        db,
        feed.id,
        _row("K1", listing_id="L1", agent="A1", status="Pending", modified=later),
        _row("K1", listing_id="L1", status="Closed", modified=later),  # the page's last word
        seen_at=later,
    )
    await _upsert(db, feed.id, seen_at=later)  # an empty page changes nothing

    async with db.transaction() as session:
        rows = await session.replica.of_keys(feed.id, ["K1", "K2"])
        replaced = rows["K1"]
        assert (replaced.standard_status, replaced.modification_timestamp) == ("Closed", later)
        assert (replaced.list_agent_mls_id, replaced.list_office_mls_id) == (None, None)
        assert (replaced.seen_at, replaced.gone) == (later, False)
        assert (rows["K2"].standard_status, rows["K2"].seen_at) == ("Active", first)
        assert await session.replica.count(feed.id) == 2
        assert [r.listing_key for r in await session.replica.find(feed.id, agent_mls_id="A1")] == [
            "K2"
        ]


async def test_a_page_is_upserted_in_one_statement_whichever_fields_its_records_leave_empty(
    db: Any,
) -> None:
    """A page is one executemany per thousand rows, even when its records leave different
    fields empty (an ORM bulk insert groups rows by their empty fields and ran a real page as
    thousands of statements of a few rows)."""
    if is_dynamodb(db):
        pytest.skip("DynamoDB writes items in batches of its own; SQL's statements are counted")
    feed = await _shared_feed(db)
    rows = [
        _row(
            f"K{i:04}",
            listing_id=None if i % 2 else f"L{i}",
            office=None if i % 3 else "O1",
            modified=None if i % 5 else utcnow(),
        )
        for i in range(1500)
    ]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO feed_records"):
            statements.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await _upsert(db, feed.id, *rows, seen_at=utcnow())
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert len(statements) == 2  # 1,000 rows, then 500
    async with db.transaction() as session:
        assert await session.replica.count(feed.id) == 1500
        stored = await session.replica.of_keys(feed.id, ["K0001", "K0002"])
        assert (stored["K0001"].listing_id, stored["K0002"].listing_id) == (None, "L2")


async def test_replica_rows_are_found_by_key_listing_id_agent_and_office_within_their_feed(
    db: Any,
) -> None:
    """Every criterion given must hold; rows come by ListingKey, gone ones included; another
    feed's rows are never found."""
    feed, other = await _shared_feed(db), await _shared_feed(db, "other")
    now = utcnow()
    await _upsert(
        db,
        feed.id,
        _row("K3", listing_id="L3", agent="A1", office="O2"),
        _row("K1", listing_id="L1", agent="A1", office="O1"),
        _row("K2", listing_id="L2", agent="A2", office="O1", gone=True),
        seen_at=now,
    )
    await _upsert(db, other.id, _row("K1", listing_id="L1", agent="A1", office="O1"), seen_at=now)

    async with db.transaction() as session:
        replica = session.replica

        async def keys(**criteria: str) -> list[str]:
            return [row.listing_key for row in await replica.find(feed.id, **criteria)]

        found = await replica.of_keys(feed.id, ["K1", "K2", "K9"])
        assert sorted(found) == ["K1", "K2"]  # K9 is not in the replica
        assert {row.feed_id for row in found.values()} == {feed.id}
        assert await replica.of_keys(feed.id, []) == {}
        assert await keys() == ["K1", "K2", "K3"]
        assert await keys(listing_key="K2") == ["K2"]
        assert await keys(listing_id="L3") == ["K3"]
        assert await keys(agent_mls_id="A1") == ["K1", "K3"]
        assert await keys(office_mls_id="O1") == ["K1", "K2"]  # gone rows too
        assert await keys(agent_mls_id="A1", office_mls_id="O1") == ["K1"]
        assert await keys(listing_key="K1", agent_mls_id="A2") == []
        assert await keys(agent_mls_id="nobody") == []
        assert [row.feed_id for row in await replica.find(other.id, agent_mls_id="A1")] == [
            other.id
        ]


async def test_a_reconciliation_marks_gone_the_rows_it_neither_saw_nor_saw_change(
    db: Any,
) -> None:
    """The key-only pull touches what the feed still has; afterwards, a row neither touched
    nor modified since the pull began left the feed. Rows already gone are not reported
    again, and touching a key the replica lacks adds no row."""
    feed, other = await _shared_feed(db), await _shared_feed(db, "other")
    loaded = utcnow() - timedelta(days=1)
    started = utcnow()
    await _upsert(
        db,
        feed.id,
        _row("SEEN"),
        _row("UNSEEN"),
        _row("OLD", modified=loaded),
        _row("CHANGED", modified=started + timedelta(minutes=1)),  # upserted during the pull
        _row("GONE", gone=True),
        seen_at=loaded,
    )
    await _upsert(db, other.id, _row("UNSEEN"), seen_at=loaded)

    async with db.transaction() as session:
        await session.replica.touch(feed.id, ["SEEN", "NEW"], seen_at=started)
    async with db.transaction() as session:
        gone = await session.replica.mark_gone_unseen(feed.id, since=started)

    assert sorted(gone) == ["OLD", "UNSEEN"]
    async with db.transaction() as session:
        rows = {row.listing_key: row for row in await session.replica.find(feed.id)}
        assert {key for key, row in rows.items() if row.gone} == {"GONE", "OLD", "UNSEEN"}
        assert rows["SEEN"].seen_at == started
        assert rows["UNSEEN"].seen_at == loaded
        assert "NEW" not in rows
        assert await session.replica.count(feed.id) == 5  # gone rows are kept
        assert await session.replica.mark_gone_unseen(feed.id, since=started) == []
        [untouched] = await session.replica.find(other.id)
        assert untouched.gone is False


async def test_a_page_of_any_size_is_held_whole_and_counted_per_feed(db: Any) -> None:
    """More rows than one request carries (DynamoDB writes 25 and reads 100 at a time)."""
    feed, other, empty = [await _shared_feed(db, name) for name in ("a", "b", "c")]
    now = utcnow()
    keys = [f"K{i:03d}" for i in range(130)]
    await _upsert(db, feed.id, *(_row(key) for key in keys), seen_at=now)
    await _upsert(db, other.id, _row("K001"), seen_at=now)

    async with db.transaction() as session:
        assert await session.replica.count(feed.id) == 130
        assert await session.replica.count(other.id) == 1
        assert await session.replica.count(empty.id) == 0
        assert sorted(await session.replica.of_keys(feed.id, keys)) == keys


# listings held in a feed


async def test_a_records_holders_are_every_member_holding_its_key_in_that_feed(db: Any) -> None:
    """Two users of one shared feed both hold K1 (co-listing agents): a change to K1 reaches
    both, and no listing of another feed with the same key."""
    alice, bob = await _user(db, "alice@example.com"), await _user(db, "bob@example.com")
    feed = await _shared_feed(db)
    alices, bobs = await _join(db, alice, feed, "A1"), await _join(db, bob, feed, "B1")
    elsewhere = await _private(db, alice)
    await _listings(db, alices, "K2", "K1")
    await _listings(db, bobs, "K1", "K3")
    [not_in_feed] = await _listings(db, elsewhere, "K1")
    unheld = await _shared_feed(db, "nobody's")

    async with db.transaction() as session:
        held = await session.listings.held_in_feed(feed.id, ["K1", "K3", "K9", "K1"])
        assert sorted((li.mls_connection_id, li.listing_key) for li in held) == sorted(
            [(alices.id, "K1"), (bobs.id, "K1"), (bobs.id, "K3")]
        )
        assert {li.user_id for li in held} == {alice.id, bob.id}
        assert await session.listings.held_in_feed(feed.id, []) == []
        assert [li.id for li in await session.listings.held_in_feed(elsewhere.feed_id, ["K1"])] == [
            not_in_feed.id
        ]
        assert [li.listing_key for li in await session.listings.of_feed(feed.id)] == [
            "K1",
            "K1",
            "K2",
            "K3",
        ]
        assert await session.connections.holdings(feed.id) == {alices.id: 2, bobs.id: 2}
        assert list(await session.connections.holdings(feed.id)) == [alices.id, bobs.id]
        assert await session.connections.holdings(elsewhere.feed_id) == {elsewhere.id: 1}
        assert await session.connections.holdings(unheld.id) == {}
        assert {c.id for c in await session.connections.with_ids([bobs.id, "nobody"])} == {bobs.id}
        # A cron cycle opens many feeds at once: the same answers, every feed asked present.
        many = await session.connections.holdings_of([feed.id, elsewhere.feed_id, unheld.id])
        assert many == {
            feed.id: {alices.id: 2, bobs.id: 2},
            elsewhere.feed_id: {elsewhere.id: 1},
            unheld.id: {},
        }
        assert list(many[feed.id]) == [alices.id, bobs.id]
        assert await session.connections.holdings_of([]) == {}
        found = await session.feeds.with_ids([feed.id, unheld.id, "no-such-feed", feed.id])
        assert sorted(f.id for f in found) == sorted([feed.id, unheld.id])


async def test_a_listing_found_in_its_feed_is_changed_within_the_unit_of_work(db: Any) -> None:
    """The fan-out records status changes on the holders it found, in the same transaction."""
    alice = await _user(db, "alice@example.com")
    feed = await _shared_feed(db)
    [listing] = await _listings(db, await _join(db, alice, feed), "K1")

    async with db.transaction() as session:
        [held] = await session.listings.held_in_feed(feed.id, ["K1"])
        await repo.record_status_change(
            session, held, S.SOLD, mls_modified_at=None, sync_run_id="run"
        )

    async with db.transaction() as session:
        [stored] = await session.listings.of_feed(feed.id)
        assert (stored.id, stored.status) == (listing.id, S.SOLD)
        assert [h.new_status for h in await session.listings.history(listing.id)] == [S.SOLD]


# members


async def test_a_feeds_members_are_listed_oldest_first_and_all_take_its_state(db: Any) -> None:
    """An expired credential expires every membership of the feed (what each user sees), and
    only that feed's; new credentials make them all active again."""
    alice, bob = await _user(db, "alice@example.com"), await _user(db, "bob@example.com")
    carol = await _user(db, "carol@example.com")
    feed = await _shared_feed(db)
    alices, bobs = await _join(db, alice, feed), await _join(db, bob, feed)
    carols = await _private(db, carol)

    async with db.transaction() as session:
        await repo.mark_feed(session, feed.id, ConnectionState.EXPIRED, "token expired")

    async with db.transaction() as session:
        members = await session.connections.of_feed(feed.id)
        assert [m.id for m in members] == [alices.id, bobs.id]
        assert {(m.state, m.state_message) for m in members} == {
            (ConnectionState.EXPIRED, "token expired")
        }
        stored = await repo.get_feed(session, feed.id)
        assert stored is not None
        assert (stored.state, stored.state_message) == (ConnectionState.EXPIRED, "token expired")
        assert await session.feeds.active_ids() == [carols.feed_id]
        assert [m.id for m in await session.connections.of_feed(carols.feed_id)] == [carols.id]
        late = await repo.join_feed(session, user_id=carol.id, feed=stored)
        assert late.state == ConnectionState.EXPIRED  # a new member takes the feed's state

    async with db.transaction() as session:
        stored = await repo.get_feed(session, feed.id)
        assert stored is not None
        await repo.replace_mls_credentials(session, stored, CIPHER, "new", auth_kind="bearer")

    async with db.transaction() as session:
        members = await session.connections.of_feed(feed.id)
        assert {(m.state, m.state_message) for m in members} == {(ConnectionState.ACTIVE, None)}
        assert len(members) == 3
        assert set(await session.feeds.active_ids()) == {feed.id, carols.feed_id}


async def test_a_feeds_successful_run_is_one_write_whatever_the_number_of_members(
    db: Any,
) -> None:
    """The run's time is the feed's alone (each member's last sync is its feed's last run):
    an idle cycle of a 1,000-agent feed writes one row, not 1,000."""
    alice, bob = await _user(db, "alice@example.com"), await _user(db, "bob@example.com")
    feed = await _shared_feed(db)
    await _join(db, alice, feed)
    await _join(db, bob, feed)
    elsewhere = await _private(db, alice)
    at = utcnow().replace(microsecond=250000)

    async with db.transaction() as session:
        await session.feeds.ran(feed.id, at)
        await session.feeds.ran("no-such-feed", at)  # removed meanwhile: nothing to write

    async with db.transaction() as session:
        ran = await repo.get_feed(session, feed.id)
        assert ran is not None and ran.last_run_at == at
        untouched = await repo.get_feed(session, elsewhere.feed_id)
        assert untouched is not None and untouched.last_run_at is None


# feeds


async def test_a_feeds_suspension_is_stored_and_read_back_by_every_unit_of_work(db: Any) -> None:
    feed = await _shared_feed(db)
    until = utcnow().replace(microsecond=0) + timedelta(hours=1)
    async with db.transaction() as session:
        row = await session.get(MlsFeed, feed.id)
        assert row is not None and row.suspended_until is None
        row.suspended_until = until
    async with db.transaction() as session:
        (found,) = await session.feeds.with_ids([feed.id])
        assert found.suspended_until == until


async def test_feeds_are_listed_oldest_first_by_owner_and_expired_ones_wait(db: Any) -> None:
    """`owner_user_id` None lists every feed (shared and private); a user's id only their
    private ones. Expired feeds are not replicated until they have new credentials."""
    alice, bob = await _user(db, "alice@example.com"), await _user(db, "bob@example.com")
    shared = await _shared_feed(db)
    alices = await _private(db, alice)
    bobs = await _private(db, bob)

    async with db.transaction() as session:
        await repo.mark_feed(session, bobs.feed_id, ConnectionState.EXPIRED, "expired")

    async with db.transaction() as session:
        everyone = [f.id for f in await session.feeds.all()]
        assert everyone == [shared.id, alices.feed_id, bobs.feed_id]
        assert [f.id for f in await session.feeds.all(owner_user_id=alice.id)] == [alices.feed_id]
        assert [f.owner_user_id for f in await session.feeds.all(owner_user_id=bob.id)] == [bob.id]
        assert await session.feeds.all(owner_user_id="nobody") == []
        assert await session.feeds.active_ids() == [shared.id, alices.feed_id]


async def test_deleting_a_feed_removes_its_replica_members_and_their_listings(db: Any) -> None:
    """With each listing go its history, posts and queued unpublish jobs; another feed, its
    replica and its members' listings stay, as do the users."""
    alice, bob = await _user(db, "alice@example.com"), await _user(db, "bob@example.com")
    feed = await _shared_feed(db)
    alices, bobs = await _join(db, alice, feed), await _join(db, bob, feed)
    kept = await _private(db, alice)
    [sold], [bobs_listing] = await _listings(db, alices, "K1"), await _listings(db, bobs, "K1")
    [survivor] = await _listings(db, kept, "K1")
    now = utcnow()
    await _upsert(db, feed.id, *(_row(f"K{i}") for i in range(30)), seen_at=now)
    await _upsert(db, kept.feed_id, _row("K1"), seen_at=now)
    async with db.transaction() as session:
        post = await repo.add_post(session, listing=sold, platform="x", platform_post_id="1")
        await repo.add_post(session, listing=survivor, platform="x", platform_post_id="2")
    await _sell(db, sold)

    async with db.transaction() as session:
        await session.feeds.delete(feed.id)

    async with db.transaction() as session:
        assert await repo.get_feed(session, feed.id) is None
        assert await session.replica.count(feed.id) == 0
        assert await session.replica.find(feed.id) == []
        assert await session.connections.of_feed(feed.id) == []
        for connection in (alices, bobs):
            assert await repo.get_mls_connection(session, connection.id) is None
        for listing in (sold, bobs_listing):
            assert await repo.get_listing(session, listing.id) is None
        assert await session.listings.of_feed(feed.id) == []
        assert await session.listings.history(sold.id) == []
        assert await session.get(Post, post.id) is None
        assert await session.outbox.depth() == (0, None)
        assert [f.id for f in await session.feeds.all()] == [kept.feed_id]
        assert await session.replica.count(kept.feed_id) == 1
        assert [li.id for li in await session.listings.of_user(alice.id)] == [survivor.id]
        assert len(await session.posts.of_user(alice.id)) == 1
        assert await session.users.find(bob.id) is not None


async def test_deleting_one_membership_removes_only_its_listings_from_the_feed(db: Any) -> None:
    """A connection's delete still takes its listings, history, posts and jobs with it; the
    shared feed, its replica and the other members' listings stay."""
    alice, bob = await _user(db, "alice@example.com"), await _user(db, "bob@example.com")
    feed = await _shared_feed(db)
    alices, bobs = await _join(db, alice, feed), await _join(db, bob, feed)
    [leaving], [staying] = await _listings(db, alices, "K1"), await _listings(db, bobs, "K1")
    await _upsert(db, feed.id, _row("K1"), seen_at=utcnow())
    async with db.transaction() as session:
        post = await repo.add_post(session, listing=leaving, platform="x", platform_post_id="1")
    await _sell(db, leaving)

    async with db.transaction() as session:
        await session.connections.delete(alices.id)

    async with db.transaction() as session:
        assert await repo.get_mls_connection(session, alices.id) is None
        assert await repo.get_listing(session, leaving.id) is None
        assert await session.listings.history(leaving.id) == []
        assert await session.get(Post, post.id) is None
        assert await session.outbox.depth() == (0, None)
        assert [m.id for m in await session.connections.of_feed(feed.id)] == [bobs.id]
        assert [li.id for li in await session.listings.held_in_feed(feed.id, ["K1"])] == [
            staying.id
        ]
        assert await session.connections.holdings(feed.id) == {bobs.id: 1}
        assert await repo.get_feed(session, feed.id) is not None
        assert await session.replica.count(feed.id) == 1


# DynamoDB's table layout


async def test_db_upgrade_gives_an_older_dynamodb_data_table_the_feeds_index(db: Any) -> None:
    """Tables made before MLS feeds lack gsi3 (members and listings by feed): `db upgrade`
    adds it, once, and the feed queries then work on the table."""
    if not is_dynamodb(db):
        pytest.skip("DynamoDB's table layout")
    from mls_sync.store.dynamo.database import DynamoDatabase
    from mls_sync.store.dynamo.schema import GSI3, data_table

    endpoint = db.tables.endpoint_url
    older = DynamoDatabase(
        f"dynamodb://old{uuid.uuid4().hex[:10]}?region=us-east-1&endpoint_url={endpoint}"
    )
    data = older.tables.data_table
    try:
        client = await older.client()
        before = data_table(data)
        before["GlobalSecondaryIndexes"] = [
            i for i in before["GlobalSecondaryIndexes"] if i["IndexName"] != GSI3
        ]
        before["AttributeDefinitions"] = [
            a for a in before["AttributeDefinitions"] if not a["AttributeName"].startswith(GSI3)
        ]
        await client.create_table(**before)

        assert await older.create_tables() == [
            older.tables.coordination_table,
            f"{data} (index {GSI3})",
        ]
        assert await older.create_tables() == []

        indexes = (await client.describe_table(TableName=data))["Table"]["GlobalSecondaryIndexes"]
        assert sorted(i["IndexName"] for i in indexes) == ["gsi1", "gsi2", "gsi3"]
        user = await _user(older, "alice@example.com")
        [listing] = await _listings(older, await _private(older, user), "K1")
        async with older.transaction() as session:
            assert [li.id for li in await session.listings.of_feed(listing.feed_id)] == [listing.id]
    finally:
        await older.dispose()


# the outbox's claims (a feed's new holder takes over a dead one's)


async def test_a_dead_drains_claims_are_released_and_no_one_elses(db: Any) -> None:
    """A claim records its holder; releasing a holder's claims makes exactly its jobs due
    again at once, unclaimed, and leaves other holders' claims alone."""
    user = await _user(db, "alice@example.com")
    [listing] = await _listings(db, await _private(db, user), "K1")
    async with db.transaction() as session:
        for platform in ("facebook", "x", "linkedin"):
            await repo.add_post(session, listing=listing, platform=platform, platform_post_id="p")
    async with db.transaction() as session:
        assert await session.outbox.enqueue(listing.id) == 3
    now = utcnow() + timedelta(seconds=1)
    until = now + timedelta(minutes=5)
    async with db.transaction() as session:
        dead, alive, anonymous = [job for job, _, _ in await session.outbox.due(now=now)]
    async with db.transaction() as session:
        assert await session.outbox.claim(dead.id, now=now, until=until, by="dead") is True
        assert await session.outbox.claim(alive.id, now=now, until=until, by="alive") is True
        assert await session.outbox.claim(anonymous.id, now=now, until=until) is True

    later = now + timedelta(seconds=30)
    async with db.transaction() as session:
        assert await session.outbox.release_claims("dead", now=later) == 1
    async with db.transaction() as session:
        assert await session.outbox.release_claims("dead", now=later) == 0
        assert [job.id for job, _, _ in await session.outbox.due(now=later)] == [dead.id]
        claims = {
            job_id: (await session.get(UnpublishJob, job_id))
            for job_id in (dead.id, alive.id, anonymous.id)
        }
        assert {job_id: job and job.claimed_by for job_id, job in claims.items()} == {
            dead.id: None,
            alive.id: "alive",
            anonymous.id: None,
        }
