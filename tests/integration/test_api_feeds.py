"""MLS feeds over HTTP: the operator's `/api/admin/feeds` (behind MLS_SYNC_ADMIN_API_KEY), users
joining a shared feed through `POST /api/mls-connections {"feedId": ...}`, and imports that read
the feed's local replica instead of asking the MLS (also where the MLS cannot filter on the
agent, as on MLS Grid)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api_support import CRON_SECRET, MISSING_ID, api_client, bearer, new_user
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.services.connections import SHARED_FEED_SETTINGS
from mls_sync.sync.importer import FEED_NOT_LOADED

ADMIN_KEY = "operator-admin-key"
FEEDS = "/api/admin/feeds"
MLS_TOKEN = "mls-token"  # the `reso` fixture's
FEED_FIELDS = {
    "id",
    "name",
    "shared",
    "ownerUserId",
    "provider",
    "baseUrl",
    "authKind",
    "keyField",
    "filterStyle",
    "state",
    "stateMessage",
    "cadenceSeconds",
    "loadedAt",
    "reconciledAt",
    "bookmarkTimestamp",
    "lastRunAt",
    "suspendedUntil",
    "createdAt",
    "members",
    "records",
}


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime, admin_api_key=SecretStr(ADMIN_KEY)) as client:
        yield client


class Caller:
    """The API as one caller (the operator, or a user) sees it; keeps every response body, to
    search for secrets."""

    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client = client
        self.headers = bearer(key)
        self.bodies: list[str] = []

    async def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, path, headers=self.headers, **kwargs)
        self.bodies.append(response.text)
        return response

    def leaked(self, *secrets: str) -> list[str]:
        return [s for s in secrets if any(s in body for body in self.bodies)]


@pytest.fixture
def admin(api: httpx.AsyncClient) -> Caller:
    return Caller(api, ADMIN_KEY)


async def user(api: httpx.AsyncClient, runtime: Runtime, email: str) -> Caller:
    _, key = await new_user(runtime, email)
    return Caller(api, key)


async def new_feed(admin: Caller, reso_url: str, **fields: Any) -> dict[str, Any]:
    body = {"baseUrl": reso_url, "credentials": {"token": MLS_TOKEN}, "name": "Shared MLS"}
    created = await admin("POST", FEEDS, json={**body, **fields})
    assert created.status_code == 201, created.text
    return dict(created.json())


async def join(caller: Caller, feed_id: str, agent: str | None = None) -> dict[str, Any]:
    body = {"feedId": feed_id} | ({"agentMlsId": agent} if agent else {})
    joined = await caller("POST", "/api/mls-connections", json=body)
    assert joined.status_code == 201, joined.text
    return dict(joined.json())


def listing_keys(response: httpx.Response) -> list[str]:
    return listing_keys_of(response.json())


def listing_keys_of(listings: list[dict[str, Any]]) -> list[str]:
    return [listing["listingKey"] for listing in listings]


# the admin key


ADMIN_ROUTES = [
    ("GET", FEEDS),
    ("POST", FEEDS),
    ("GET", f"{FEEDS}/{MISSING_ID}"),
    ("PATCH", f"{FEEDS}/{MISSING_ID}"),
    ("DELETE", f"{FEEDS}/{MISSING_ID}"),
    ("POST", f"{FEEDS}/{MISSING_ID}/sync"),
]


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_routes_answer_503_while_no_admin_key_is_set(
    runtime: Runtime, reso: ResoSandbox, secret: str | None, method: str, path: str
) -> None:
    _, user_key = await new_user(runtime)
    configured = SecretStr(secret) if secret is not None else None
    async with api_client(runtime, admin_api_key=configured) as closed:
        for headers in ({}, bearer(""), bearer("anything"), bearer(user_key)):
            response = await closed.request(method, path, headers=headers, json={})
            assert response.status_code == 503, (method, path, headers)
            assert response.json() == {
                "detail": "The admin routes are disabled: set MLS_SYNC_ADMIN_API_KEY to enable them"
            }
    assert reso.request_count == 0


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
async def test_admin_routes_refuse_a_wrong_key_or_a_users_api_key_with_401(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, method: str, path: str
) -> None:
    _, user_key = await new_user(runtime)
    for headers in (
        {},
        bearer("wrong-key"),
        bearer(ADMIN_KEY + "x"),
        bearer(user_key),  # a user's API key is no operator's key
        bearer(CRON_SECRET),
        {"Authorization": f"Basic {ADMIN_KEY}"},
    ):
        response = await api.request(method, path, headers=headers, json={})
        assert response.status_code == 401, (method, path, headers)
        assert response.json() == {"detail": "Missing or wrong admin key"}
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await api.get(FEEDS, headers=bearer(ADMIN_KEY))).json() == []  # nothing was made
    assert reso.request_count == 0


# the operator's feeds


async def test_the_operator_creates_lists_reads_updates_and_deletes_a_feed(
    admin: Caller, reso: ResoSandbox, reso_url: str
) -> None:
    created = await admin(
        "POST",
        FEEDS,
        json={"baseUrl": reso_url, "credentials": {"token": "vendor-secret"}, "name": "Main"},
    )

    assert created.status_code == 201
    feed = created.json()
    assert set(feed) == FEED_FIELDS
    assert {k: feed[k] for k in FEED_FIELDS - {"id", "createdAt"}} == {
        "name": "Main",
        "shared": True,
        "ownerUserId": None,
        "provider": "generic",
        "baseUrl": reso_url,
        "authKind": "bearer",
        "keyField": "ListingKey",  # the generic profile's
        "filterStyle": "in",
        "state": "active",
        "stateMessage": None,
        "cadenceSeconds": 900,
        "loadedAt": None,
        "reconciledAt": None,
        "bookmarkTimestamp": None,
        "lastRunAt": None,
        "suspendedUntil": None,
        "members": 0,
        "records": 0,
    }
    path = f"{FEEDS}/{feed['id']}"
    assert (await admin("GET", FEEDS)).json() == [feed]
    assert (await admin("GET", path)).json() == feed

    patched = await admin(
        "PATCH",
        path,
        json={
            "name": "Renamed",
            "cadenceSeconds": 300,
            "credentials": {"token": "second-vendor-secret"},
        },
    )
    assert patched.status_code == 200
    assert (patched.json()["name"], patched.json()["cadenceSeconds"]) == ("Renamed", 300)
    assert (await admin("GET", path)).json() == patched.json()

    for cadence in (59, 86_401):
        refused = await admin("PATCH", path, json={"cadenceSeconds": cadence})
        assert refused.status_code == 422, cadence
        assert [e["loc"] for e in refused.json()["detail"]] == [["body", "cadenceSeconds"]]
    assert (await admin("GET", path)).json()["cadenceSeconds"] == 300

    assert (await admin("DELETE", path)).status_code == 204
    for gone in (path, f"{FEEDS}/{MISSING_ID}", f"{FEEDS}/not-an-id"):
        missing = await admin("GET", gone)
        assert (missing.status_code, missing.json()) == (404, {"detail": "MLS feed not found"})
    assert (await admin("GET", FEEDS)).json() == []
    assert admin.leaked("vendor-secret", "second-vendor-secret") == []
    assert reso.request_count == 0  # managing feeds asks no MLS


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"credentials": {"token": "t"}}, ["body", "baseUrl"]),
        ({"baseUrl": "http://mls"}, ["body", "credentials"]),
        ({"baseUrl": "ftp://mls", "credentials": {"token": "t"}}, ["body", "baseUrl"]),
        ({"baseUrl": "http://mls", "credentials": {}}, ["body", "token"]),
        (
            {"baseUrl": "http://mls", "credentials": {"token": "t"}, "cadenceSeconds": 30},
            ["body", "cadenceSeconds"],
        ),
        (
            {"baseUrl": "http://mls", "credentials": {"token": "t"}, "provider": "nope"},
            ["body", "provider"],
        ),
        (
            {
                "baseUrl": "http://mls",
                "credentials": {"token": "t"},
                "provider": "mlsgrid",
                "profileOverrides": {"originating_system": "mred"},  # not a profile field
            },
            ["body", "profileOverrides", "originating_system"],
        ),
        (
            {
                "baseUrl": "http://mls",
                "credentials": {"authKind": "oauth2", "clientId": "c", "clientSecret": "s"},
            },
            ["body", "tokenUrl"],  # the generic profile has no token endpoint
        ),
    ],
    ids=[
        "no-url",
        "no-credentials",
        "bad-url",
        "no-token",
        "cadence",
        "provider",
        "overrides",
        "no-token-url",
    ],
)
async def test_a_bad_feed_is_422_naming_the_field_and_nothing_is_made(
    admin: Caller, body: dict[str, Any], loc: list[str]
) -> None:
    response = await admin("POST", FEEDS, json=body)

    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]]
    assert (await admin("GET", FEEDS)).json() == []


async def test_a_feed_in_use_is_deleted_only_with_force_and_takes_its_connections(
    api: httpx.AsyncClient, admin: Caller, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_listing("K1", "MLS-1", "Active", list_agent_mls_id="A1")
    feed = await new_feed(admin, reso_url)
    path = f"{FEEDS}/{feed['id']}"
    agent = await user(api, runtime, "agent@example.com")
    connection = await join(agent, feed["id"], agent="A1")
    assert (await admin("POST", f"{path}/sync")).status_code == 200
    imported = await agent(
        "POST", f"/api/mls-connections/{connection['id']}/listings/import", json={}
    )
    assert imported.json()["imported"] == 1

    refused = await admin("DELETE", path)

    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "The feed has 1 connections; remove them first (or force the removal)"
    }
    assert (await admin("GET", path)).json()["members"] == 1
    assert listing_keys(await agent("GET", "/api/listings")) == ["K1"]

    assert (await admin("DELETE", path, params={"force": "true"})).status_code == 204

    assert (await admin("GET", path)).status_code == 404
    assert (await agent("GET", "/api/mls-connections")).json() == []
    assert (await agent("GET", "/api/listings")).json() == []


async def test_a_feed_being_synced_can_be_neither_synced_nor_deleted(
    admin: Caller, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    feed = await new_feed(admin, reso_url)
    path = f"{FEEDS}/{feed['id']}"
    assert await runtime.engine.guard.try_acquire(feed["id"])  # e.g. a member's sync

    synced = await admin("POST", f"{path}/sync")
    deleted = await admin("DELETE", path)

    assert (synced.status_code, deleted.status_code) == (409, 409)
    assert synced.json() == {"detail": "A sync of this MLS connection is already in progress"}
    assert (await admin("GET", path)).status_code == 200
    assert reso.request_count == 0
    await runtime.engine.guard.release(feed["id"])
    assert (await admin("POST", f"{path}/sync")).status_code == 200
    missing = await admin("POST", f"{FEEDS}/{MISSING_ID}/sync")
    assert (missing.status_code, missing.json()) == (404, {"detail": "MLS feed not found"})


async def test_syncing_a_feed_loads_it_once_for_every_member(
    api: httpx.AsyncClient, admin: Caller, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    for n in range(1, 4):
        reso.add_listing(f"K{n}", f"MLS-{n}", "Active", list_agent_mls_id=f"A{n}")
    feed = await new_feed(admin, reso_url)
    for n in (1, 2):
        await join(await user(api, runtime, f"agent{n}@example.com"), feed["id"], agent=f"A{n}")

    response = await admin("POST", f"{FEEDS}/{feed['id']}/sync")

    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["data"]["totalListings"], body["data"]["errors"]) == (
        True,
        0,  # nobody holds a listing yet
        [],
    )
    # The first run is the feed's load: every record, oldest first, in one request here.
    [load] = reso.requests
    assert load.params["$filter"].startswith("ModificationTimestamp ge 1970-01-01")
    assert load.params["$orderby"] == "ModificationTimestamp asc"
    shown = (await admin("GET", f"{FEEDS}/{feed['id']}")).json()
    assert (shown["members"], shown["records"]) == (2, 3)
    assert shown["loadedAt"] is not None and shown["lastRunAt"] is not None
    async with runtime.db.transaction() as session:
        runs = await session.runs.newest(user_id=None)
    # One row for the feed; none for its idle members (nobody asked, nothing happened).
    assert [(r.scope, r.scope_id, r.trigger, r.success) for r in runs] == [
        ("feed", feed["id"], "api", True)
    ]


# users and shared feeds


async def test_a_user_joins_a_shared_feed_with_its_id_and_their_agent_id(
    api: httpx.AsyncClient, admin: Caller, runtime: Runtime, reso_url: str
) -> None:
    feed = await new_feed(admin, reso_url, credentials={"token": "vendor-secret"})
    agent = await user(api, runtime, "agent@example.com")

    joined = await agent(
        "POST",
        "/api/mls-connections",
        json={"feedId": feed["id"], "agentMlsId": "A1", "name": "My MLS"},
    )

    assert joined.status_code == 201
    connection = joined.json()
    assert {k: connection[k] for k in ("feedId", "sharedFeed", "agentMlsId", "officeMlsId")} == {
        "feedId": feed["id"],
        "sharedFeed": True,
        "agentMlsId": "A1",
        "officeMlsId": None,
    }
    assert (connection["name"], connection["state"]) == ("My MLS", "active")
    # What the feed says about the MLS, never its credentials.
    assert (connection["baseUrl"], connection["provider"]) == (reso_url, "generic")
    assert (connection["keyField"], connection["filterStyle"]) == ("ListingKey", "in")
    assert (await agent("GET", "/api/mls-connections")).json() == [connection]
    assert (await admin("GET", f"{FEEDS}/{feed['id']}")).json()["members"] == 1

    again = await agent("POST", "/api/mls-connections", json={"feedId": feed["id"]})
    assert (again.status_code, again.json()) == (
        409,
        {"detail": "You already have a connection to this MLS feed"},
    )
    assert agent.leaked("vendor-secret") == []

    # Leaving the feed removes the membership only: the feed stays, for its other members.
    assert (await agent("DELETE", f"/api/mls-connections/{connection['id']}")).status_code == 204
    assert (await admin("GET", f"{FEEDS}/{feed['id']}")).json()["members"] == 0


async def test_another_users_private_feed_cannot_be_joined_and_looks_missing(
    api: httpx.AsyncClient, admin: Caller, runtime: Runtime, reso_url: str
) -> None:
    owner = await user(api, runtime, "owner@example.com")
    intruder = await user(api, runtime, "intruder@example.com")
    private = await owner(
        "POST", "/api/mls-connections", json={"baseUrl": reso_url, "token": "owners-token"}
    )
    private_feed = private.json()["feedId"]
    listed = {f["id"]: f for f in (await admin("GET", FEEDS)).json()}
    assert listed[private_feed]["shared"] is False  # the operator sees it, as private

    theirs = await intruder("POST", "/api/mls-connections", json={"feedId": private_feed})
    missing = await intruder("POST", "/api/mls-connections", json={"feedId": MISSING_ID})
    own = await owner("POST", "/api/mls-connections", json={"feedId": private_feed})

    assert theirs.status_code == missing.status_code == own.status_code == 404
    assert theirs.json() == missing.json() == {"detail": "MLS feed not found"}
    assert theirs.headers["content-length"] == missing.headers["content-length"]
    assert own.json() == missing.json()  # private feeds are joined by nobody, owner included
    assert (await intruder("GET", "/api/mls-connections")).json() == []
    assert (await admin("GET", f"{FEEDS}/{private_feed}")).json()["members"] == 1


@pytest.mark.parametrize(
    "given",
    [
        {"token": "t"},
        {"baseUrl": "http://mls.example"},
        {"authKind": "oauth2", "clientId": "c", "clientSecret": "s"},
        {"tokenUrl": "http://mls.example/token"},
    ],
    ids=["token", "base-url", "oauth-client", "token-url"],
)
async def test_joining_a_shared_feed_with_credentials_or_a_url_is_422(
    api: httpx.AsyncClient,
    admin: Caller,
    runtime: Runtime,
    reso_url: str,
    given: dict[str, str],
) -> None:
    feed = await new_feed(admin, reso_url)
    agent = await user(api, runtime, "agent@example.com")

    response = await agent("POST", "/api/mls-connections", json={"feedId": feed["id"], **given})

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "feedId"],
            "msg": "give feedId (a shared feed) or baseUrl and credentials, not both",
            "type": "value_error",
        }
    ]
    assert (await agent("GET", "/api/mls-connections")).json() == []
    assert (await admin("GET", f"{FEEDS}/{feed['id']}")).json()["members"] == 0


async def test_a_shared_feeds_settings_cannot_be_changed_through_a_connection(
    api: httpx.AsyncClient, admin: Caller, runtime: Runtime, reso_url: str
) -> None:
    feed = await new_feed(admin, reso_url)
    agent = await user(api, runtime, "agent@example.com")
    connection = await join(agent, feed["id"], agent="A1")
    path = f"/api/mls-connections/{connection['id']}"

    for body, field in [
        ({"name": "Mine", "credentials": {"token": "my-own-token"}}, "credentials"),
        ({"baseUrl": "http://elsewhere.example"}, "baseUrl"),
    ]:
        refused = await agent("PATCH", path, json=body)
        assert refused.status_code == 422, body
        assert refused.json()["detail"] == [
            {"loc": ["body", field], "msg": SHARED_FEED_SETTINGS, "type": "value_error"}
        ]
    assert (await agent("GET", path)).json() == connection  # not even the name changed
    shown = (await admin("GET", f"{FEEDS}/{feed['id']}")).json()
    assert (shown["baseUrl"], shown["name"]) == (reso_url, "Shared MLS")

    # What is the user's own: the name and the agent and office ids.
    changed = await agent("PATCH", path, json={"name": "Mine", "officeMlsId": "O1"})
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["officeMlsId"]) == ("Mine", "O1")
    assert changed.json()["agentMlsId"] == "A1"


async def test_a_shared_feeds_status_mapping_cannot_be_changed_through_a_connection(
    api: httpx.AsyncClient, admin: Caller, runtime: Runtime, reso_url: str
) -> None:
    feed = await new_feed(admin, reso_url)
    agent = await user(api, runtime, "agent@example.com")
    connection = await join(agent, feed["id"])

    refused = await agent(
        "PATCH",
        f"/api/mls-connections/{connection['id']}",
        json={"statusOverrides": {"Hold": "off_market"}},
    )

    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "statusOverrides"]


async def test_two_members_of_one_shared_feed_see_only_their_own_listings_after_a_sync(
    api: httpx.AsyncClient, admin: Caller, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_listing("K1", "MLS-1", "Active", list_agent_mls_id="A1")
    reso.add_listing("K2", "MLS-2", "Active", list_agent_mls_id="A1")
    reso.add_listing("K3", "MLS-3", "Active", list_agent_mls_id="B1")
    reso.add_listing("K4", "MLS-4", "Active", list_agent_mls_id="Z9")  # nobody's
    feed = await new_feed(admin, reso_url)
    alice = await user(api, runtime, "alice@example.com")
    bob = await user(api, runtime, "bob@example.com")
    alices = await join(alice, feed["id"], agent="A1")
    bobs = await join(bob, feed["id"], agent="B1")
    assert (await admin("POST", f"{FEEDS}/{feed['id']}/sync")).status_code == 200
    for caller, connection in ((alice, alices), (bob, bobs)):
        imported = await caller(  # no agent given: the connection's own
            "POST", f"/api/mls-connections/{connection['id']}/listings/import", json={}
        )
        assert imported.status_code == 200
    reso.set_status("K1", "Closed")
    reso.set_status("K3", "Pending")
    reso.set_status("K4", "Closed")

    synced = await alice("POST", f"/api/mls-connections/{alices['id']}/sync")

    data = synced.json()["data"]
    assert (data["totalListings"], data["updatedListings"]) == (2, 1)  # Alice's part only
    assert [(c["mlsNumber"], c["newStatus"]) for c in data["statusChanges"]] == [("MLS-1", "sold")]
    mine = (await alice("GET", "/api/listings")).json()
    assert [(x["listingKey"], x["status"]) for x in mine] == [("K1", "sold"), ("K2", "active")]
    # The one run of the feed changed Bob's listing too; he sees it, and only his.
    theirs = (await bob("GET", "/api/listings")).json()
    assert [(x["listingKey"], x["status"]) for x in theirs] == [("K3", "pending")]
    for caller, other in ((alice, bobs), (bob, alices)):
        foreign = await caller("GET", "/api/listings", params={"mlsConnectionId": other["id"]})
        assert foreign.json() == []
        assert (await caller("GET", f"/api/mls-connections/{other['id']}")).status_code == 404
    async with runtime.db.transaction() as session:
        runs = await session.runs.newest(user_id=None)  # newest first
    # Alice's sync was one run of the feed: its row, Alice's (she asked) and Bob's (his listing
    # changed), pointing at it; before it, the operator's load (a feed row alone).
    feed_rows = [r for r in runs if r.scope == "feed"]
    assert [r.scope_id for r in feed_rows] == [feed["id"], feed["id"]]
    sync_row = feed_rows[0]
    members = {r.scope_id: r for r in runs if r.scope == "connection"}
    assert set(members) == {alices["id"], bobs["id"]}
    assert {r.feed_run_id for r in members.values()} == {sync_row.id}
    assert (sync_row.totals["totalListings"], sync_row.totals["updatedListings"]) == (3, 2)
    assert members[bobs["id"]].totals["updatedListings"] == 1


# imports read the replica


async def test_an_import_before_the_feeds_first_load_is_409_and_asks_nothing(
    api: httpx.AsyncClient, admin: Caller, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_listing("K1", "MLS-1", "Active", list_agent_mls_id="A1")
    feed = await new_feed(admin, reso_url)
    agent = await user(api, runtime, "agent@example.com")
    connection = await join(agent, feed["id"], agent="A1")

    imported = await agent(
        "POST", f"/api/mls-connections/{connection['id']}/listings/import", json={}
    )
    registered = await agent(
        "POST", "/api/listings", json={"mlsConnectionId": connection["id"], "listingKey": "K1"}
    )

    for refused in (imported, registered):
        assert (refused.status_code, refused.json()) == (409, {"detail": FEED_NOT_LOADED})
    assert FEED_NOT_LOADED.startswith("This MLS feed has not finished its first load yet")
    assert (await agent("GET", "/api/listings")).json() == []
    assert reso.request_count == 0
    # A listing given in full needs no replica.
    given = await agent(
        "POST",
        "/api/listings",
        json={
            "mlsConnectionId": connection["id"],
            "listingKey": "K1",
            "mlsNumber": "MLS-1",
            "status": "active",
        },
    )
    assert given.status_code == 201
    assert reso.request_count == 0


async def test_after_a_sync_an_import_reads_the_replica_without_an_mls_request(
    api: httpx.AsyncClient, admin: Caller, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_listing("K1", "MLS-1", "Active", list_agent_mls_id="A1")
    reso.add_listing("K2", "MLS-2", "Pending", list_agent_mls_id="A1", list_office_mls_id="O1")
    reso.add_listing("K3", "MLS-3", "Active", list_agent_mls_id="A2", list_office_mls_id="O1")
    reso.add_listing("K4", "MLS-4", "Active", list_agent_mls_id="A2")
    feed = await new_feed(admin, reso_url)
    agent = await user(api, runtime, "agent@example.com")
    connection = await join(agent, feed["id"], agent="A1")
    import_path = f"/api/mls-connections/{connection['id']}/listings/import"
    synced = await agent("POST", f"/api/mls-connections/{connection['id']}/sync")
    assert (synced.status_code, synced.json()["success"]) == (200, True)
    loaded = reso.request_count

    own = await agent("POST", import_path, json={})
    office = await agent("POST", import_path, json={"officeMlsId": "O1"})
    registered = await agent(
        "POST", "/api/listings", json={"mlsConnectionId": connection["id"], "listingKey": "K4"}
    )

    assert reso.request_count == loaded  # the replica answered all three
    assert own.status_code == 200
    assert (own.json()["imported"], own.json()["alreadyPresent"]) == (2, 0)
    assert [(x["listingKey"], x["mlsNumber"], x["status"]) for x in own.json()["listings"]] == [
        ("K1", "MLS-1", "active"),
        ("K2", "MLS-2", "pending"),
    ]
    assert (office.json()["imported"], office.json()["alreadyPresent"]) == (1, 1)
    assert listing_keys_of(office.json()["listings"]) == ["K3"]
    assert (registered.status_code, registered.json()["mlsNumber"]) == (201, "MLS-4")
    assert listing_keys(await agent("GET", "/api/listings")) == ["K1", "K2", "K3", "K4"]


async def test_on_mls_grid_an_import_by_agent_works_though_the_mls_cannot_filter_on_it(
    api: httpx.AsyncClient,
    admin: Caller,
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    http: httpx.AsyncClient,
) -> None:
    reso.vendor = "mlsgrid"
    reso.add_listing("K1", "MLS-1", "Active", list_agent_mls_id="A1")
    reso.add_listing("K2", "MLS-2", "Active", list_agent_mls_id="A1")
    reso.add_listing("K3", "MLS-3", "Active", list_agent_mls_id="B7")
    feed = await new_feed(
        admin,
        reso_url,
        provider="mlsgrid",
        profileOverrides={"originating_system_name": "sandbox"},
    )
    # MLS Grid's profile: keyed by ListingId (ListingKey is not filterable there).
    assert (feed["keyField"], feed["filterStyle"]) == ("ListingId", "in")
    agent = await user(api, runtime, "agent@example.com")
    connection = await join(agent, feed["id"], agent="A1")
    # What an import by asking the MLS would need, MLS Grid refuses:
    asked = await http.get(
        f"{reso_url}/Property",
        params={"$filter": "OriginatingSystemName eq 'sandbox' and ListAgentMlsId eq 'A1'"},
        headers={**bearer(MLS_TOKEN), "Accept-Encoding": "gzip"},
    )
    assert asked.status_code == 400
    assert asked.json()["error"]["message"] == "ListAgentMlsId is not a searchable field"
    assert (await admin("POST", f"{FEEDS}/{feed['id']}/sync")).status_code == 200
    loaded = reso.request_count

    imported = await agent(
        "POST", f"/api/mls-connections/{connection['id']}/listings/import", json={}
    )

    assert reso.request_count == loaded
    assert imported.status_code == 200
    assert listing_keys_of(imported.json()["listings"]) == ["K1", "K2"]
    for request in reso.requests[1:]:  # the feed's own requests kept MLS Grid's rules
        assert request.params["$filter"].count("OriginatingSystemName eq 'sandbox'") == 1
        assert "ListAgentMlsId" not in request.params["$filter"]
        assert "gzip" in request.headers["accept-encoding"]
    # The imported listings are synced like any other.
    reso.set_status("K2", "Closed")
    synced = await agent("POST", f"/api/mls-connections/{connection['id']}/sync")
    changes = synced.json()["data"]["statusChanges"]
    assert [(c["mlsNumber"], c["newStatus"]) for c in changes] == [("MLS-2", "sold")]
