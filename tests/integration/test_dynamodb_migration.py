"""`mls-sync db upgrade` on a DynamoDB table written before MLS feeds (moto's local server): what
Alembic revision 0005 does on SQL. Every connection becomes a private feed of its owner with the
same id, its listings are held in that feed, users and platform connections join the index
partitions that list them, and everything else is kept; a second upgrade finds nothing to do.

The old items are written with raw PutItems in the shapes the code before feeds wrote
(its store/dynamo/schema.py and store/models.py), so the test does not lean on today's
writers, and are read back through today's repositories."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mls_sync.config import Settings
from mls_sync.domain.errors import Conflict
from mls_sync.domain.status import ConnectionState, PostStatus
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import open_runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher, cipher_from_settings
from mls_sync.store.dynamo.database import DynamoDatabase
from mls_sync.store.dynamo.migrate import MARKER
from mls_sync.store.dynamo.schema import GSI3, data_table
from mls_sync.store.models import Listing

pytestmark = pytest.mark.dynamodb

CIPHER = TokenCipher([TokenCipher.generate_key()])
CREATED = "2025-03-01T10:00:00.000000Z"
SYNCED = "2025-06-01T12:00:00.000000Z"
USER, CONNECTION, LISTING, POST, JOB, PLATFORM, RUN = (
    "u" * 32,
    "c" * 32,
    "l" * 32,
    "p" * 32,
    "j" * 32,
    "f" * 32,
    "r" * 32,
)
HISTORY = 1_740_823_200_000_000_000  # microseconds * 1000 + counter, as the old code made them
# What a connection held before feeds and a feed holds now.
MOVED = (
    "provider",
    "base_url",
    "auth_kind",
    "credentials_encrypted",
    "key_field",
    "filter_style",
    "status_overrides",
    "profile_overrides",
    "bookmark_timestamp",
    "bookmark_keys",
    "last_full_check_at",
    "entity_event_sequence",
)


def _s(text: str) -> dict[str, str]:
    return {"S": text}


def _n(number: int) -> dict[str, str]:
    return {"N": str(number)}


def _old_items(*, base_url: str, secret: str, cipher: TokenCipher) -> list[dict[str, Any]]:
    """One of everything, as the code before feeds wrote it (index keys gsi1 and gsi2 only)."""
    order = f"{CREATED}#"
    return [
        {
            "pk": _s(f"USER#{USER}"),
            "sk": _s("#USER"),
            "gsi1pk": _s("EMAIL#agent@example.com"),
            "gsi1sk": _s("#USER"),
            "gsi2pk": _s("APIKEY#keyhash"),
            "gsi2sk": _s("#USER"),
            "id": _s(USER),
            "email": _s("agent@example.com"),
            "api_key_hash": _s("keyhash"),
            "created_at": _s(CREATED),
            "version": _n(1),
        },
        {
            "pk": _s(f"CONN#{CONNECTION}"),
            "sk": _s("#CONN"),
            "gsi1pk": _s(f"USER#{USER}"),
            "gsi1sk": _s(f"CONN#{order}{CONNECTION}"),
            "gsi2pk": _s("CONNSTATE#active"),
            "gsi2sk": _s(f"CONN#{order}{CONNECTION}"),
            "id": _s(CONNECTION),
            "user_id": _s(USER),
            "name": _s("Agent's MLS"),
            "provider": _s("generic"),
            "base_url": _s(base_url),
            "auth_kind": _s("bearer"),
            "credentials_encrypted": _s(cipher.encrypt(secret)),
            "key_field": _s("ListingKey"),
            "filter_style": _s("in"),
            "status_overrides": _s(json.dumps({"Hold": "off_market"})),
            "state": _s("active"),
            "last_sync_at": _s(SYNCED),
            "bookmark_timestamp": _s("2025-06-01T11:59:00.000000Z"),
            "bookmark_keys": _s(json.dumps(["K1"])),
            "profile_overrides": _s(json.dumps({"page_size": 200})),
            "last_full_check_at": _s("2025-05-31T00:00:00.000000Z"),
            "entity_event_sequence": _n(42),
            "created_at": _s(CREATED),
            "version": _n(7),
        },
        {
            "pk": _s(f"LISTING#{LISTING}"),
            "sk": _s("#LISTING"),
            "gsi1pk": _s(f"CONN#{CONNECTION}"),
            "gsi1sk": _s("LISTING#K1"),
            "gsi2pk": _s(f"USER#{USER}"),
            "gsi2sk": _s(f"LISTING#{order}{LISTING}"),
            "id": _s(LISTING),
            "user_id": _s(USER),
            "mls_connection_id": _s(CONNECTION),
            "mls_number": _s("MLS-K1"),
            "listing_key": _s("K1"),
            "status": _s("active"),
            "mls_modified_at": _s("2025-05-01T00:00:00.000000Z"),
            "created_at": _s(CREATED),
            "updated_at": _s("2025-05-02T00:00:00.000000Z"),
            "version": _n(3),
        },
        {
            "pk": _s(f"LISTING#{LISTING}"),
            "sk": _s(f"HISTORY#{HISTORY:020d}"),
            "id": _n(HISTORY),
            "listing_id": _s(LISTING),
            "old_status": _s("coming_soon"),
            "new_status": _s("active"),
            "source": _s("mls_sync"),
            "sync_run_id": _s(RUN),
            "at": _s("2025-05-02T00:00:00.000000Z"),
            "version": _n(1),
        },
        {
            "pk": _s(f"POST#{POST}"),
            "sk": _s("#POST"),
            "gsi1pk": _s(f"LISTING#{LISTING}"),
            "gsi1sk": _s(f"POST#{order}{POST}"),
            "id": _s(POST),
            "listing_id": _s(LISTING),
            "platform": _s("facebook"),
            "platform_post_id": _s("fb-1"),
            "status": _s("published"),
            "created_at": _s(CREATED),
            "version": _n(1),
        },
        {
            "pk": _s(f"JOB#{JOB}"),
            "sk": _s("#JOB"),
            "gsi1pk": _s("OUTBOX"),
            "gsi1sk": _s(f"2025-06-02T00:00:00.000000Z#{JOB}"),
            "gsi2pk": _s(f"JOBPOST#{POST}"),
            "gsi2sk": _s("#JOB"),
            "id": _s(JOB),
            "post_id": _s(POST),
            "attempts": _n(2),
            "next_attempt_at": _s("2025-06-02T00:00:00.000000Z"),
            "last_error": _s("platform answered 503"),
            "created_at": _s(CREATED),
            "version": _n(3),
        },
        {
            "pk": _s(f"PLATFORM#{PLATFORM}"),
            "sk": _s("#PLATFORM"),
            "gsi1pk": _s(f"USER#{USER}"),
            "gsi1sk": _s("PLATFORM#facebook"),
            "id": _s(PLATFORM),
            "user_id": _s(USER),
            "platform": _s("facebook"),
            "access_token_encrypted": _s(cipher.encrypt("fb-token")),
            "state": _s("active"),
            "created_at": _s(CREATED),
            "version": _n(1),
        },
        {
            "pk": _s(f"RUN#{RUN}"),
            "sk": _s("#RUN"),
            "gsi1pk": _s("RUNS#ALL"),
            "gsi1sk": _s(f"{SYNCED}#{RUN}"),
            "gsi2pk": _s(f"RUNS#{USER}"),
            "gsi2sk": _s(f"{SYNCED}#{RUN}"),
            "id": _s(RUN),
            "trigger": _s("cron"),
            "scope": _s("connection"),
            "scope_id": _s(CONNECTION),
            "user_id": _s(USER),
            "started_at": _s(SYNCED),
            "finished_at": _s(SYNCED),
            "success": {"BOOL": True},
            "totals": _s(json.dumps({"totalListings": 1})),
            "errors": _s("[]"),
            "state": _s("finished"),
            "status_changes": _s("[]"),
            "progress": _s("{}"),
            "version": _n(2),
        },
    ]


@pytest.fixture
async def older(dynamodb_endpoint: str) -> AsyncIterator[DynamoDatabase]:
    """Tables as the code before feeds made them (the data table without gsi3), empty."""
    db = DynamoDatabase(
        f"dynamodb://old{uuid.uuid4().hex[:10]}?region=us-east-1&endpoint_url={dynamodb_endpoint}"
    )
    client = await db.client()
    before = data_table(db.tables.data_table)
    before["GlobalSecondaryIndexes"] = [
        index for index in before["GlobalSecondaryIndexes"] if index["IndexName"] != GSI3
    ]
    before["AttributeDefinitions"] = [
        a for a in before["AttributeDefinitions"] if not a["AttributeName"].startswith(GSI3)
    ]
    await client.create_table(**before)
    await client.create_table(
        TableName=db.tables.coordination_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    yield db
    await db.dispose()


async def _put(db: DynamoDatabase, items: list[dict[str, Any]]) -> None:
    client = await db.client()
    for item in items:
        await client.put_item(TableName=db.tables.data_table, Item=item)


async def _raw(db: DynamoDatabase, pk: str, sk: str) -> dict[str, Any]:
    client = await db.client()
    response = await client.get_item(
        TableName=db.tables.data_table, Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True
    )
    return dict(response["Item"])


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


async def test_db_upgrade_makes_each_older_connection_a_private_feed_with_the_same_id(
    older: DynamoDatabase,
) -> None:
    """The feed takes the connection's id, owner, profile, credentials, overrides, state and
    name, `last_run_at` its last sync and cadence 900, but not its bookmark (the feed loads
    once); the connection is its membership, the listing is held in it, and the user, history,
    post, job, platform connection and run are read back as they were."""
    await _put(older, _old_items(base_url="http://mls.test", secret="mls-token", cipher=CIPHER))
    data = older.tables.data_table

    done = await older.create_tables()

    assert done == [
        f"{data} (index {GSI3})",
        f"{data} (1 MLS connection made a private feed)",
        f"{data} (1 listing put in its connection's feed)",
        f"{data} (1 user indexed)",
        f"{data} (1 platform connection indexed)",
    ]
    async with older.transaction() as session:
        feed = await repo.get_feed(session, CONNECTION)
        assert feed is not None
        assert (feed.owner_user_id, feed.name, feed.provider, feed.base_url, feed.auth_kind) == (
            USER,
            "Agent's MLS",
            "generic",
            "http://mls.test",
            "bearer",
        )
        assert CIPHER.decrypt(feed.credentials_encrypted) == "mls-token"
        assert (feed.key_field, feed.filter_style) == ("ListingKey", "in")
        assert feed.status_overrides == {"Hold": "off_market"}
        assert feed.profile_overrides == {"page_size": 200}
        assert (feed.state, feed.state_message, feed.cadence_seconds) == ("active", None, 900)
        assert (feed.bookmark_timestamp, feed.bookmark_keys) == (None, [])
        assert (feed.loaded_at, feed.reconciled_at, feed.entity_event_sequence) == (
            None,
            None,
            None,
        )
        assert feed.last_run_at == _at(SYNCED)
        assert feed.created_at == _at(CREATED)
        assert [f.id for f in await session.feeds.all(owner_user_id=USER)] == [CONNECTION]
        assert [f.id for f in await session.feeds.all()] == [CONNECTION]
        assert await session.feeds.active_ids() == [CONNECTION]

        connection = await repo.get_mls_connection(session, CONNECTION)
        assert connection is not None
        assert (connection.user_id, connection.feed_id, connection.name) == (
            USER,
            CONNECTION,
            "Agent's MLS",
        )
        assert connection.state == "active"
        feed = await repo.get_feed(session, CONNECTION)
        assert feed is not None and feed.last_run_at == _at(SYNCED)  # the connection's last sync
        assert [c.id for c in await session.connections.of_user(USER)] == [CONNECTION]
        assert [c.id for c in await session.connections.of_feed(CONNECTION)] == [CONNECTION]
        assert await session.connections.state_counts() == {ConnectionState.ACTIVE: 1}

        [held] = await session.listings.held_in_feed(CONNECTION, ["K1"])
        assert (held.id, held.feed_id, held.mls_connection_id, held.status) == (
            LISTING,
            CONNECTION,
            CONNECTION,
            S.ACTIVE,
        )
        assert held.updated_at == _at("2025-05-02T00:00:00.000000Z")  # not touched
        assert [li.id for li in await session.listings.of_connection(CONNECTION)] == [LISTING]
        assert await session.connections.holdings(CONNECTION) == {CONNECTION: 1}
        [history] = await session.listings.history(LISTING)
        assert (history.id, history.old_status, history.new_status, history.sync_run_id) == (
            HISTORY,
            "coming_soon",
            "active",
            RUN,
        )
        [post] = await session.posts.of_listing(LISTING)
        assert (post.id, post.platform_post_id, post.status) == (POST, "fb-1", PostStatus.PUBLISHED)
        assert await session.outbox.depth() == (1, _at(CREATED))

        assert [u.id for u in await session.users.all()] == [USER]
        user = await session.users.by_api_key_hash("keyhash")
        assert user is not None and user.id == USER
        assert await session.platforms.state_counts() == {("facebook", "active"): 1}
        [run] = await session.runs.newest(user_id=USER)
        assert (run.id, run.scope, run.totals) == (RUN, "connection", {"totalListings": 1})

    raw = await _raw(older, f"CONN#{CONNECTION}", "#CONN")
    assert [name for name in MOVED if name in raw] == []  # the feed holds them now
    assert raw["version"] == _n(8)


async def test_a_second_db_upgrade_has_nothing_to_do(older: DynamoDatabase) -> None:
    """Run again, the upgrade reports nothing and writes nothing; and were its marker lost,
    the pass over the table would find every item in today's shape and leave it alone."""
    await _put(older, _old_items(base_url="http://mls.test", secret="mls-token", cipher=CIPHER))
    await older.create_tables()
    keys = [
        (f"FEED#{CONNECTION}", "#FEED"),
        (f"CONN#{CONNECTION}", "#CONN"),
        (f"LISTING#{LISTING}", "#LISTING"),
        (f"USER#{USER}", "#USER"),
        (f"PLATFORM#{PLATFORM}", "#PLATFORM"),
        (f"JOB#{JOB}", "#JOB"),
    ]
    migrated = [await _raw(older, pk, sk) for pk, sk in keys]

    assert await older.create_tables() == []
    client = await older.client()
    await client.delete_item(TableName=older.tables.data_table, Key=MARKER)
    assert await older.create_tables() == []

    assert [await _raw(older, pk, sk) for pk, sk in keys] == migrated
    async with older.transaction() as session:
        assert [f.id for f in await session.feeds.all()] == [CONNECTION]


async def test_a_connection_with_more_listings_than_one_transaction_holds_is_migrated_whole(
    older: DynamoDatabase,
) -> None:
    """TransactWriteItems takes 100 writes: 150 listings go in several, and every one is held
    in the feed afterwards."""
    items = _old_items(base_url="http://mls.test", secret="mls-token", cipher=CIPHER)
    [template] = [item for item in items if item["sk"] == _s("#LISTING")]
    keys = [f"K{i:03d}" for i in range(150)]
    listings = [
        {
            **template,
            "pk": _s(f"LISTING#{i:032d}"),
            "id": _s(f"{i:032d}"),
            "gsi1sk": _s(f"LISTING#{key}"),
            "gsi2sk": _s(f"LISTING#{CREATED}#{i:032d}"),
            "listing_key": _s(key),
            "mls_number": _s(f"MLS-{key}"),
        }
        for i, key in enumerate(keys)
    ]
    await _put(older, [item for item in items if item["sk"] != _s("#LISTING")] + listings)
    data = older.tables.data_table

    done = await older.create_tables()

    assert f"{data} (150 listings put in their connection's feed)" in done
    async with older.transaction() as session:
        held = await session.listings.held_in_feed(CONNECTION, keys)
        assert sorted(listing.listing_key for listing in held) == keys
        assert await session.connections.holdings(CONNECTION) == {CONNECTION: 150}


async def test_an_item_written_during_the_upgrade_stops_it_and_the_next_upgrade_finishes(
    older: DynamoDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewrites are conditioned on the version read: a connection changed between the read and
    the write makes the upgrade stop with a Conflict instead of overwriting the change, no feed
    is made without its connection, and running it again does the whole migration."""
    from mls_sync.store.dynamo import migrate

    await _put(older, _old_items(base_url="http://mls.test", secret="mls-token", cipher=CIPHER))
    data = older.tables.data_table
    send = migrate._Migration._send

    async def written_meanwhile(self: Any, groups: Any) -> None:
        monkeypatch.setattr(migrate._Migration, "_send", send)  # only the first time
        client = await older.client()
        await client.update_item(
            TableName=data,
            Key={"pk": _s(f"CONN#{CONNECTION}"), "sk": _s("#CONN")},
            UpdateExpression="SET #name = :name ADD version :one",
            ExpressionAttributeNames={"#name": "name"},
            ExpressionAttributeValues={":name": _s("Renamed"), ":one": _n(1)},
        )
        await send(self, groups)

    monkeypatch.setattr(migrate._Migration, "_send", written_meanwhile)

    with pytest.raises(Conflict, match=f"{data} was written during the upgrade"):
        await older.create_tables()

    async with older.transaction() as session:
        assert await repo.get_feed(session, CONNECTION) is None
    assert await older.create_tables() == [
        f"{data} (1 MLS connection made a private feed)",
        f"{data} (1 listing put in its connection's feed)",
        f"{data} (1 user indexed)",
        f"{data} (1 platform connection indexed)",
    ]
    async with older.transaction() as session:
        feed = await repo.get_feed(session, CONNECTION)
        assert feed is not None and feed.name == "Renamed"


async def test_a_table_made_by_this_code_is_never_scanned_for_old_items(
    dynamodb_endpoint: str,
) -> None:
    """New tables are marked migrated when they are created, so later upgrades (every
    `mls-sync serve` start) read one item instead of the table with every feed's replica."""
    db = DynamoDatabase(
        f"dynamodb://new{uuid.uuid4().hex[:10]}?region=us-east-1&endpoint_url={dynamodb_endpoint}"
    )
    try:
        assert await db.create_tables() == [db.tables.data_table, db.tables.coordination_table]
        # An item in the old shape appearing now is not looked for (the marker says done).
        await _put(db, _old_items(base_url="http://mls.test", secret="t", cipher=CIPHER)[:1])

        assert await db.create_tables() == []

        assert "gsi3pk" not in await _raw(db, f"USER#{USER}", "#USER")
    finally:
        await db.dispose()


async def test_a_migrated_connection_loads_its_feed_and_syncs_against_the_mls(
    older: DynamoDatabase, settings: Settings, reso: ResoSandbox, reso_url: str
) -> None:
    """The first run of the migrated feed is a load from the beginning: the held listing gets
    the MLS's status (with its history row), and the feed is loaded with a bookmark."""
    reso.add_listing("K1", "MLS-K1", "Pending")
    items = _old_items(base_url=reso_url, secret="mls-token", cipher=cipher_from_settings(settings))
    await _put(older, items)
    await older.create_tables()

    async with open_runtime(settings, db=older) as runtime:
        outcome = await runtime.engine.sync_connection(CONNECTION)

    assert outcome.success, outcome.message
    assert (outcome.result.total_listings, outcome.result.updated_listings) == (1, 1)
    [change] = outcome.result.status_changes
    assert (change.listing_id, change.old_status, change.new_status) == (
        LISTING,
        S.ACTIVE,
        S.PENDING,
    )
    async with older.transaction() as session:
        listing = await session.get(Listing, LISTING)
        assert listing is not None and listing.status == S.PENDING
        history = await session.listings.history(LISTING)
        assert [(h.old_status, h.new_status) for h in history] == [
            ("coming_soon", "active"),
            ("active", "pending"),
        ]
        feed = await repo.get_feed(session, CONNECTION)
        assert feed is not None
        assert feed.loaded_at is not None
        assert feed.bookmark_timestamp is not None
        assert await session.replica.count(CONNECTION) == 1
