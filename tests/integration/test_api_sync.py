"""The sync routes over HTTP: the cron endpoint (secret, aggregation over every user, no
double runs) and the three user operations (API keys, isolation, busy connections)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from api_support import CRON_SECRET, MISSING_ID, api_client, bearer, new_user
from factories import join, seed_connection, seed_posts, seed_shared_feed
from mls_sync.domain.status import ConnectionState
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo

CRON = "/api/cron/sync-mls-status"
RESULT_KEYS = {
    "totalListings",
    "updatedListings",
    "unpublishedPosts",
    "restoredListings",
    "errors",
    "statusChanges",
}


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


async def runs_with_trigger(runtime: Runtime, trigger: str, scope: str | None = None) -> int:
    async with runtime.db.transaction() as session:
        runs = await session.runs.newest(user_id=None, limit=10_000)
    return sum(r.trigger == trigger and scope in (None, r.scope) for r in runs)


# the cron endpoint


async def test_cron_syncs_every_active_connection_of_every_user(
    api: httpx.AsyncClient,
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
) -> None:
    alice, _ = await new_user(runtime, "alice@example.com")
    bob, _ = await new_user(runtime, "bob@example.com")
    a = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE}, user_id=alice)
    b = await seed_connection(
        runtime, reso, reso_url, {"B1": S.PENDING, "B2": S.ACTIVE}, user_id=bob
    )
    expired = await seed_connection(runtime, reso, reso_url, {"C1": S.ACTIVE}, user_id=bob)
    async with runtime.db.transaction() as session:
        await repo.mark_feed(session, expired.feed_id, ConnectionState.EXPIRED, "x")
    await seed_posts(runtime, platforms, a.listings["A1"], ("facebook",))
    reso.set_status("A1", "Closed")
    reso.set_status("B1", "Active")

    response = await api.post(CRON, headers=bearer(CRON_SECRET))

    assert response.status_code == 200
    body = response.json()
    assert (body["success"], set(body)) == (True, {"success", "message", "data"})
    data = body["data"]
    assert set(data) >= RESULT_KEYS | {"connections", "skippedConnections"}
    assert (data["totalListings"], data["updatedListings"]) == (3, 2)
    assert (data["unpublishedPosts"], data["restoredListings"]) == (1, 1)
    by_id = {c["connectionId"]: c for c in data["connections"]}
    assert set(by_id) == {a.connection_id, b.connection_id}  # the expired one waits
    assert by_id[b.connection_id]["totalListings"] == 2
    assert by_id[b.connection_id]["skipped"] is False
    assert data["skippedConnections"] == 0


async def test_cron_answers_get_too_as_vercel_cron_calls_it(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})

    assert (await api.get(CRON)).status_code == 401
    response = await api.get(CRON, headers=bearer(CRON_SECRET))

    assert response.status_code == 200
    assert response.json()["data"]["totalListings"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-secret"),
        bearer(CRON_SECRET + "x"),
        {"Authorization": f"Basic {CRON_SECRET}"},
    ],
    ids=["none", "wrong", "longer", "not-bearer"],
)
async def test_cron_without_the_secret_is_401_and_runs_nothing(
    api: httpx.AsyncClient,
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    headers: dict[str, str],
) -> None:
    await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})

    response = await api.post(CRON, headers=headers)

    assert response.status_code == 401
    assert response.json() == {"detail": "Missing or wrong cron secret"}
    assert response.headers["www-authenticate"] == "Bearer"
    assert reso.request_count == 0
    assert await runs_with_trigger(runtime, "cron") == 0


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
async def test_cron_without_a_configured_secret_is_503_never_open(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, secret: str | None
) -> None:
    await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    async with api_client(runtime, cron_secret=secret) as api:
        for headers in ({}, bearer(""), bearer("anything")):
            response = await api.post(CRON, headers=headers)
            assert response.status_code == 503
            assert "CRON_SECRET" in response.json()["detail"]
    assert reso.request_count == 0


async def test_a_second_cron_call_during_a_run_skips_its_connections(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    first = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE})
    second = await seed_connection(runtime, reso, reso_url, {"B1": S.ACTIVE}, user_id=first.user_id)
    reso.latency = 0.3  # the MLS is slow: the two calls overlap

    one, two = await asyncio.gather(
        api.post(CRON, headers=bearer(CRON_SECRET)), api.post(CRON, headers=bearer(CRON_SECRET))
    )

    assert one.status_code == two.status_code == 200
    bodies = sorted((one.json(), two.json()), key=lambda b: b["data"]["skippedConnections"])
    ran, skipped = bodies
    assert ran["data"]["skippedConnections"] == 0
    assert ran["data"]["totalListings"] == 2
    assert skipped["success"] is True  # an overlap is not a failure
    assert skipped["message"] == (
        "A sync is already in progress for all 2 MLS connections; none started"
    )
    assert skipped["data"]["skippedConnections"] == 2
    assert {c["connectionId"] for c in skipped["data"]["connections"]} == {
        first.connection_id,
        second.connection_id,
    }
    assert all(c["skipped"] and c["totalListings"] == 0 for c in skipped["data"]["connections"])
    # Each connection's feed was run once: one feed run row each, and no connection rows (an
    # idle cron run reports its members in the feed's row only).
    assert await runs_with_trigger(runtime, "cron") == 2
    assert await runs_with_trigger(runtime, "cron", scope="feed") == 2


async def test_cron_skips_only_the_connection_whose_feed_someone_else_is_syncing(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    busy = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE})
    free = await seed_connection(runtime, reso, reso_url, {"B1": S.ACTIVE}, user_id=busy.user_id)
    # The guard is per feed: e.g. a user's sync of the busy connection holds its feed.
    assert await runtime.engine.guard.try_acquire(busy.feed_id)

    body = (await api.post(CRON, headers=bearer(CRON_SECRET))).json()

    assert body["success"] is True
    assert body["message"].startswith(
        "Synced 1 of 1 MLS connections (1 skipped: a sync of them was already in progress)"
    )
    by_id = {c["connectionId"]: c for c in body["data"]["connections"]}
    assert by_id[busy.connection_id]["skipped"] is True
    assert by_id[free.connection_id]["skipped"] is False
    assert body["data"]["totalListings"] == 1


# the user routes


async def test_sync_one_connection_answers_in_the_spec_format(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id, key = await new_user(runtime)
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE}, user_id=user_id)
    reso.set_status("K1", "Pending")

    response = await api.post(
        f"/api/mls-connections/{seeded.connection_id}/sync", headers=bearer(key)
    )

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert set(body["data"]) == RESULT_KEYS
    assert body["data"]["statusChanges"] == [
        {
            "listingId": seeded.listings["K1"].id,
            "mlsNumber": "MLS-K1",
            "oldStatus": "active",
            "newStatus": "pending",
        }
    ]


async def test_sync_all_my_connections_sums_them_and_lists_each(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id, key = await new_user(runtime)
    other_id, _ = await new_user(runtime, "other@example.com")
    mine = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE}, user_id=user_id)
    await seed_connection(runtime, reso, reso_url, {"B1": S.ACTIVE}, user_id=user_id)
    await seed_connection(runtime, reso, reso_url, {"Z1": S.ACTIVE}, user_id=other_id)
    reso.set_status("A1", "Closed")

    body = (await api.post("/api/sync", headers=bearer(key))).json()

    assert body["success"] is True
    assert (body["data"]["totalListings"], body["data"]["updatedListings"]) == (2, 1)
    assert len(body["data"]["connections"]) == 2  # the other user's is not touched
    assert body["data"]["statusChanges"][0]["listingId"] == mine.listings["A1"].id


async def test_sync_one_listing(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id, key = await new_user(runtime)
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE}, user_id=user_id)
    reso.set_status("K1", "Closed")

    response = await api.post(f"/api/listings/{seeded.listings['K1'].id}/sync", headers=bearer(key))

    assert response.status_code == 200
    assert response.json()["data"]["statusChanges"][0]["newStatus"] == "sold"


async def test_another_users_ids_answer_404_exactly_like_missing_ones(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    owner_id, _ = await new_user(runtime, "owner@example.com")
    _, intruder_key = await new_user(runtime, "intruder@example.com")
    owned = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE}, user_id=owner_id)
    reso.set_status("K1", "Closed")
    listing_id = owned.listings["K1"].id

    for theirs, missing in [
        (
            f"/api/mls-connections/{owned.connection_id}/sync",
            f"/api/mls-connections/{MISSING_ID}/sync",
        ),
        (f"/api/listings/{listing_id}/sync", f"/api/listings/{MISSING_ID}/sync"),
        (f"/api/listings/{listing_id}/sync", "/api/listings/not-an-id/sync"),
    ]:
        a = await api.post(theirs, headers=bearer(intruder_key))
        b = await api.post(missing, headers=bearer(intruder_key))
        assert a.status_code == b.status_code == 404
        assert a.json() == b.json()
        assert a.headers["content-length"] == b.headers["content-length"]
    assert reso.request_count == 0  # nothing ran on the intruder's behalf


async def test_a_connection_whose_feed_is_being_synced_answers_409_and_runs_nothing(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id, key = await new_user(runtime)
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE}, user_id=user_id)
    assert await runtime.engine.guard.try_acquire(seeded.feed_id)

    response = await api.post(
        f"/api/mls-connections/{seeded.connection_id}/sync", headers=bearer(key)
    )
    everything = await api.post("/api/sync", headers=bearer(key))

    assert response.status_code == 409
    assert response.json() == {
        "success": False,
        "message": "A sync of this MLS connection is already in progress",
        "data": None,
    }
    assert everything.status_code == 200
    assert everything.json()["data"]["connections"][0]["skipped"] is True
    assert reso.request_count == 0
    await runtime.engine.guard.release(seeded.feed_id)
    again = await api.post(f"/api/mls-connections/{seeded.connection_id}/sync", headers=bearer(key))
    assert again.status_code == 200


async def test_members_of_one_shared_feed_syncing_at_once_share_one_run(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    """A connection's sync is its feed's run: while one member's runs, another member's
    answers 409 (it would replicate the same feed twice) and asks the MLS nothing."""
    reso.add_listing("A1", "MLS-A1", "Active")
    reso.add_listing("B1", "MLS-B1", "Active")
    feed_id = await seed_shared_feed(runtime, reso_url, token="mls-token")
    alice_id, alice_key = await new_user(runtime, "alice@example.com")
    bob_id, bob_key = await new_user(runtime, "bob@example.com")
    alice = await join(runtime, feed_id, user_id=alice_id, holding={"A1": S.ACTIVE})
    bob = await join(runtime, feed_id, user_id=bob_id, holding={"B1": S.ACTIVE})
    reso.set_status("B1", "Pending")
    reso.latency = 0.3  # the MLS is slow: the two calls overlap

    answers = await asyncio.gather(
        api.post(f"/api/mls-connections/{alice.connection_id}/sync", headers=bearer(alice_key)),
        api.post(f"/api/mls-connections/{bob.connection_id}/sync", headers=bearer(bob_key)),
    )

    ran, refused = sorted(answers, key=lambda r: r.status_code)
    assert (ran.status_code, refused.status_code) == (200, 409)
    assert refused.json()["message"] == "A sync of this MLS connection is already in progress"
    assert reso.request_count == 1  # one load of the feed, for both
    # Whoever ran it, Bob's listing changed: the one run served both members.
    async with runtime.db.transaction() as session:
        listing = await session.listings.by_key(bob.connection_id, "B1")
    assert listing is not None and listing.status == S.PENDING


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/sync"),
        ("POST", f"/api/mls-connections/{MISSING_ID}/sync"),
        ("POST", f"/api/listings/{MISSING_ID}/sync"),
        ("GET", "/api/me"),
        ("GET", "/api/mls-connections"),
        ("POST", "/api/mls-connections"),
        ("GET", "/api/listings"),
        ("POST", "/api/listings"),
        ("GET", "/api/posts"),
        ("POST", "/api/posts"),
        ("GET", "/api/platform-connections"),
        ("PUT", "/api/platform-connections/facebook"),
        ("DELETE", f"/api/mls-connections/{MISSING_ID}"),
    ],
)
async def test_user_routes_need_a_valid_api_key(
    api: httpx.AsyncClient, runtime: Runtime, method: str, path: str
) -> None:
    _, key = await new_user(runtime)
    for headers, detail in [
        ({}, "Missing API key: send Authorization: Bearer <key>"),
        (bearer("mls_not-a-real-key"), "Invalid API key"),
        (bearer(key + "x"), "Invalid API key"),
        (bearer(CRON_SECRET), "Invalid API key"),  # the cron secret is not a user key
        ({"Authorization": f"Basic {key}"}, "Missing API key: send Authorization: Bearer <key>"),
    ]:
        response = await api.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, headers)
        assert response.json() == {"detail": detail}


async def test_a_new_key_replaces_the_old_one(api: httpx.AsyncClient, runtime: Runtime) -> None:
    from mls_sync.services import users

    user_id, old = await new_user(runtime)
    async with runtime.db.transaction() as session:
        user = await session.users.find(user_id)
        assert user is not None
        new = await users.issue_api_key(session, user)

    assert (await api.get("/api/me", headers=bearer(old))).status_code == 401
    me = await api.get("/api/me", headers=bearer(new))
    assert me.json()["email"] == "agent@example.com"
    async with runtime.db.transaction() as session:
        stored = await session.users.find(user_id)
    assert stored is not None and new not in (stored.api_key_hash or "")  # only a hash is kept
