"""The management routes over HTTP: a user sets up MLS and platform connections, listings and
posts without touching the database; sees only their own; never gets a secret back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api_support import MISSING_ID, api_client, bearer, new_user
from factories import seed_connection
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo

MLS_TOKEN = "mls-token"  # the `reso` fixture's


class Recorder:
    """An API client for one user that keeps every response body, to search for secrets."""

    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client = client
        self.headers = bearer(key)
        self.bodies: list[str] = []

    async def __call__(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        response = await self.client.request(method, path, headers=self.headers, **kwargs)  # type: ignore[arg-type]
        self.bodies.append(response.text)
        return response

    def leaked(self, *secrets: str) -> list[str]:
        return [s for s in secrets if any(s in body for body in self.bodies)]


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


@pytest.fixture
async def me(api: httpx.AsyncClient, runtime: Runtime) -> Recorder:
    _, key = await new_user(runtime)
    return Recorder(api, key)


async def test_a_user_sets_everything_up_and_the_sync_uses_it(
    me: Recorder, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    for n in range(1, 5):
        reso.add_listing(f"K{n}", f"MLS-{n}", "Active", list_agent_mls_id="A1" if n < 4 else "A2")
    reso.add_listing("K9", "MLS-9", "Delete", list_agent_mls_id="A1")  # not importable
    platforms.add_token("facebook", "fb-access")
    platforms.add_post("facebook", "111_222")

    created = await me(
        "POST",
        "/api/mls-connections",
        json={"baseUrl": reso_url, "token": MLS_TOKEN, "name": "Test MLS"},
    )
    assert created.status_code == 201
    connection = created.json()
    assert connection["state"] == "active"
    assert connection["baseUrl"] == reso_url
    assert (connection["sharedFeed"], connection["keyField"]) == (False, "ListingKey")
    # Imports read the feed's replica: the connection's first sync loads it.
    first = await me("POST", f"/api/mls-connections/{connection['id']}/sync")
    assert (first.status_code, first.json()["success"]) == (200, True)
    loaded = reso.request_count

    imported = await me(
        "POST",
        f"/api/mls-connections/{connection['id']}/listings/import",
        json={"agentMlsId": "A1"},
    )
    assert imported.status_code == 200
    report = imported.json()
    assert (report["imported"], report["alreadyPresent"]) == (3, 0)
    assert report["skipped"] == [{"listingKey": "K9", "error": "Listing not found in MLS"}]
    assert [listing["listingKey"] for listing in report["listings"]] == ["K1", "K2", "K3"]

    again = await me(
        "POST",
        f"/api/mls-connections/{connection['id']}/listings/import",
        json={"agentMlsId": "A1"},
    )
    assert (again.json()["imported"], again.json()["alreadyPresent"]) == (0, 3)

    registered = await me(
        "POST", "/api/listings", json={"mlsConnectionId": connection["id"], "listingKey": "K4"}
    )
    assert registered.status_code == 201
    assert (registered.json()["mlsNumber"], registered.json()["status"]) == ("MLS-4", "active")
    assert reso.request_count == loaded  # imported and registered without asking the MLS

    platform = await me(
        "PUT",
        "/api/platform-connections/facebook",
        json={"accessToken": "fb-access", "refreshToken": "fb-refresh"},
    )
    assert platform.status_code == 200
    assert platform.json()["hasRefreshToken"] is True

    k1 = report["listings"][0]["id"]
    post = await me(
        "POST",
        "/api/posts",
        json={"listingId": k1, "platform": "facebook", "platformPostId": "111_222"},
    )
    assert post.status_code == 201
    assert post.json()["status"] == "published"

    reso.set_status("K1", "Closed")
    synced = await me("POST", "/api/sync")
    assert synced.json()["data"]["unpublishedPosts"] == 1

    posts = (await me("GET", "/api/posts", params={"listingId": k1})).json()
    assert [(p["platformPostId"], p["status"]) for p in posts] == [("111_222", "unpublished")]
    sold = (await me("GET", "/api/listings", params={"status": "sold"})).json()
    assert [listing["listingKey"] for listing in sold] == ["K1"]
    assert len((await me("GET", "/api/listings")).json()) == 4
    assert not platforms.has_post("facebook", "111_222")
    assert me.leaked(MLS_TOKEN, "fb-access", "fb-refresh") == []


async def test_mls_connection_crud(me: Recorder, runtime: Runtime, reso_url: str) -> None:
    created = (
        await me("POST", "/api/mls-connections", json={"baseUrl": reso_url, "token": "first-token"})
    ).json()
    path = f"/api/mls-connections/{created['id']}"
    # Credentials of one's own make a private feed, of which the connection is the member.
    assert created["sharedFeed"] is False
    assert created["feedId"] not in ("", created["id"])
    assert (created["agentMlsId"], created["officeMlsId"]) == (None, None)

    listed = (await me("GET", "/api/mls-connections")).json()
    assert [c["id"] for c in listed] == [created["id"]]
    assert (await me("GET", path)).json() == created

    renamed = await me(
        "PATCH", path, json={"name": "Renamed", "credentials": {"token": "second-token"}}
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Renamed"

    oauth = await me(
        "PATCH",
        path,
        json={
            "credentials": {
                "authKind": "oauth2",
                "clientId": "cid",
                "clientSecret": "client-secret-value",
                "tokenUrl": f"{reso_url}/token",
            }
        },
    )
    assert oauth.status_code == 200
    assert oauth.json()["authKind"] == "oauth2"

    agent = await me("PATCH", path, json={"agentMlsId": "A1", "officeMlsId": "O1"})
    assert (agent.json()["agentMlsId"], agent.json()["officeMlsId"]) == ("A1", "O1")
    assert agent.json()["feedId"] == created["feedId"]

    assert (await me("DELETE", path)).status_code == 204
    assert (await me("GET", path)).status_code == 404
    assert (await me("GET", "/api/mls-connections")).json() == []
    async with runtime.db.transaction() as session:  # its private feed went with it
        assert await repo.get_feed(session, created["feedId"]) is None
    assert me.leaked("first-token", "second-token", "client-secret-value") == []


async def test_a_member_signs_in_with_a_password_login_over_http_and_syncs(
    me: Recorder, reso: ResoSandbox, reso_url: str
) -> None:
    reso.oauth.add_client("rapattoni-app", "app-secret")
    reso.oauth.add_member("M12345", "member-password")
    reso.add_listing("K1", "MLS-1", "Active")
    created = await me(
        "POST",
        "/api/mls-connections",
        json={
            "provider": "rapattoni",
            "baseUrl": reso_url,
            "tokenUrl": f"{reso_url}/token",
            "authKind": "oauth2_password",
            "clientId": "rapattoni-app",
            "clientSecret": "app-secret",
            "username": "M12345",
            "password": "member-password",
            "keyField": "ListingKey",
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["authKind"] == "oauth2_password"

    synced = await me("POST", f"/api/mls-connections/{created.json()['id']}/sync")

    assert (synced.status_code, synced.json()["success"]) == (200, True)
    assert reso.oauth.grants == ["password"]
    assert me.leaked("member-password", "app-secret") == []


async def test_deleting_a_connection_takes_its_listings_and_posts(
    me: Recorder, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection = (
        await me("POST", "/api/mls-connections", json={"baseUrl": reso_url, "token": MLS_TOKEN})
    ).json()
    listing = (
        await me(
            "POST",
            "/api/listings",
            json={
                "mlsConnectionId": connection["id"],
                "listingKey": "K1",
                "mlsNumber": "M1",
                "status": "pending",
            },
        )
    ).json()
    await me(
        "POST",
        "/api/posts",
        json={"listingId": listing["id"], "platform": "x", "platformPostId": "1"},
    )

    assert (await me("DELETE", f"/api/mls-connections/{connection['id']}")).status_code == 204

    assert (await me("GET", "/api/listings")).json() == []
    assert (await me("GET", "/api/posts")).json() == []


async def test_a_connection_whose_feed_is_being_synced_cannot_be_deleted(
    me: Recorder, runtime: Runtime, reso_url: str
) -> None:
    connection = (
        await me("POST", "/api/mls-connections", json={"baseUrl": reso_url, "token": MLS_TOKEN})
    ).json()
    assert await runtime.engine.guard.try_acquire(connection["feedId"])  # a run holds the feed

    response = await me("DELETE", f"/api/mls-connections/{connection['id']}")

    assert response.status_code == 409
    assert (await me("GET", f"/api/mls-connections/{connection['id']}")).status_code == 200


async def test_registering_a_listing_the_feed_does_not_have_is_a_422_on_listing_key(
    me: Recorder, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_listing("K1", "MLS-1", "Active")
    connection = (
        await me("POST", "/api/mls-connections", json={"baseUrl": reso_url, "token": MLS_TOKEN})
    ).json()
    assert (await me("POST", f"/api/mls-connections/{connection['id']}/sync")).status_code == 200
    body = {"mlsConnectionId": connection["id"], "listingKey": "NOPE"}
    loaded = reso.request_count

    response = await me("POST", "/api/listings", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "listingKey"]
    assert response.json()["detail"][0]["msg"] == "Listing not found in MLS"
    assert reso.request_count == loaded  # the loaded replica answered, not the MLS


async def test_registering_the_same_listing_twice_is_409(me: Recorder, reso_url: str) -> None:
    connection = (
        await me("POST", "/api/mls-connections", json={"baseUrl": reso_url, "token": MLS_TOKEN})
    ).json()
    body = {
        "mlsConnectionId": connection["id"],
        "listingKey": "K1",
        "mlsNumber": "M1",
        "status": "active",
    }
    assert (await me("POST", "/api/listings", json=body)).status_code == 201
    assert (await me("POST", "/api/listings", json=body)).status_code == 409


async def test_an_import_on_a_connection_the_mls_refused_is_502_with_the_reason(
    me: Recorder, reso: ResoSandbox, reso_url: str
) -> None:
    connection = (
        await me("POST", "/api/mls-connections", json={"baseUrl": reso_url, "token": "revoked"})
    ).json()
    # The first sync (the feed's load) is where the MLS refuses the credentials.
    synced = await me("POST", f"/api/mls-connections/{connection['id']}/sync")
    assert (synced.status_code, synced.json()["success"]) == (200, False)
    assert synced.json()["message"] == "MLS connection expired. Please re-authenticate."
    asked = reso.request_count

    response = await me(
        "POST",
        f"/api/mls-connections/{connection['id']}/listings/import",
        json={"officeMlsId": "O1"},
    )

    assert response.status_code == 502
    assert response.json() == {"detail": "MLS connection expired. Please re-authenticate."}
    state = (await me("GET", f"/api/mls-connections/{connection['id']}")).json()["state"]
    assert state == "expired"
    assert reso.request_count == asked  # known-bad credentials are not tried again


async def test_an_import_naming_no_agent_on_a_connection_without_one_is_422(
    me: Recorder, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_listing("K1", "MLS-1", "Active", list_agent_mls_id="A1")
    connection = (
        await me("POST", "/api/mls-connections", json={"baseUrl": reso_url, "token": MLS_TOKEN})
    ).json()
    assert (await me("POST", f"/api/mls-connections/{connection['id']}/sync")).status_code == 200

    response = await me("POST", f"/api/mls-connections/{connection['id']}/listings/import", json={})

    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "agentMlsId"],
            "msg": "agentMlsId or officeMlsId is needed",
            "type": "value_error",
        }
    ]


async def test_platform_connections_list_and_delete(me: Recorder) -> None:
    await me("PUT", "/api/platform-connections/linkedin", json={"accessToken": "li-secret"})
    await me(
        "PUT",
        "/api/platform-connections/x",
        json={"accessToken": "x-secret", "expiresAt": "2030-01-01T12:00:00+02:00"},
    )

    listed = (await me("GET", "/api/platform-connections")).json()
    assert [(c["platform"], c["expiresAt"]) for c in listed] == [
        ("linkedin", None),
        ("x", "2030-01-01T10:00:00Z"),
    ]
    assert (await me("DELETE", "/api/platform-connections/x")).status_code == 204
    assert (await me("DELETE", "/api/platform-connections/x")).status_code == 404
    assert me.leaked("li-secret", "x-secret") == []


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        (
            "POST",
            "/api/mls-connections",
            {"baseUrl": "ftp://mls", "token": "t"},
            ["body", "baseUrl"],
        ),
        ("POST", "/api/mls-connections", {"baseUrl": "http://mls"}, ["body", "token"]),
        ("POST", "/api/mls-connections", {"token": "t"}, ["body", "baseUrl"]),
        ("POST", "/api/mls-connections", {"feedId": "not-an-id"}, ["body", "feedId"]),
        (
            "POST",
            "/api/mls-connections",
            {"baseUrl": "http://mls", "token": "t", "keyField": "MlsNumber"},
            ["body", "keyField"],
        ),
        (
            "POST",
            "/api/mls-connections",
            {"baseUrl": "http://mls", "authKind": "oauth2", "clientId": "c"},
            ["body", "clientSecret"],
        ),
        (
            "POST",
            "/api/mls-connections",
            {
                "baseUrl": "http://mls",
                "authKind": "oauth2_refresh",
                "clientId": "c",
                "tokenUrl": "http://mls/token",
            },
            ["body", "refreshToken"],
        ),
        (
            "POST",
            "/api/mls-connections",
            {
                "baseUrl": "http://mls",
                "authKind": "oauth2_password",
                "clientId": "c",
                "tokenUrl": "http://mls/token",
                "username": "M1",
            },
            ["body", "password"],
        ),
        (
            "POST",
            "/api/mls-connections",
            {
                "baseUrl": "http://mls",
                "authKind": "oauth2_password",
                "clientId": "c",
                "username": "M1",
                "password": "p",
                "provider": "rapattoni",
            },
            ["body", "tokenUrl"],
        ),
        (
            "POST",
            "/api/mls-connections",
            {"baseUrl": "http://mls", "token": "t", "provider": "nope"},
            ["body", "provider"],
        ),
        (
            "POST",
            "/api/mls-connections",
            {"baseUrl": "http://mls", "token": "t", "statusOverrides": {"Sold": "gone"}},
            ["body", "statusOverrides", "Sold"],
        ),
        (
            "POST",
            "/api/mls-connections",
            {"baseUrl": "http://mls", "token": "t", "tokn": 1},
            ["body", "tokn"],
        ),
        (
            "POST",
            "/api/mls-connections",
            {"baseUrl": "http://mls", "token": "a\x00b"},
            ["body", "token"],
        ),
        (
            "PUT",
            "/api/platform-connections/facebook",
            {"accessToken": "t", "expiresAt": "2030-01-01T00:00:00"},
            ["body", "expiresAt"],
        ),
        ("PUT", "/api/platform-connections/myspace", {"accessToken": "t"}, ["path", "platform"]),
        (
            "POST",
            "/api/posts",
            {"listingId": MISSING_ID, "platform": "myspace", "platformPostId": "1"},
            ["body", "platform"],
        ),
        (
            "POST",
            "/api/posts",
            {"listingId": "x", "platform": "x", "platformPostId": "1"},
            ["body", "listingId"],
        ),
        ("POST", "/api/listings", {"mlsConnectionId": MISSING_ID}, ["body", "listingKey"]),
        (
            "POST",
            "/api/listings",
            {"mlsConnectionId": MISSING_ID, "listingKey": "K", "status": "gone"},
            ["body", "status"],
        ),
        ("GET", "/api/listings?status=gone", None, ["query", "status"]),
        ("GET", "/api/listings?limit=0", None, ["query", "limit"]),
    ],
)
async def test_bad_requests_are_422_naming_the_field(
    me: Recorder, method: str, path: str, body: dict[str, object] | None, loc: list[str]
) -> None:
    response = await me(method, path, json=body) if body is not None else await me(method, path)

    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]]


async def test_422s_never_echo_what_was_sent(me: Recorder) -> None:
    secret = "s3cr3t-" + "x" * 9000  # too long for a token

    response = await me(
        "POST", "/api/mls-connections", json={"baseUrl": "http://mls", "token": secret}
    )

    assert response.status_code == 422
    assert "s3cr3t" not in response.text


async def test_management_routes_show_only_the_callers_data(
    api: httpx.AsyncClient, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    owner_id, owner_key = await new_user(runtime, "owner@example.com")
    _, key = await new_user(runtime, "intruder@example.com")
    owned = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE}, user_id=owner_id)
    theirs_connection, theirs_listing = owned.connection_id, owned.listings["K1"].id
    intruder = Recorder(api, key)

    for method, path, body in [
        ("GET", "/api/mls-connections/{c}", None),
        ("PATCH", "/api/mls-connections/{c}", {"name": "mine now"}),
        ("DELETE", "/api/mls-connections/{c}", None),
        ("POST", "/api/mls-connections/{c}/listings/import", {"agentMlsId": "A"}),
        ("GET", "/api/listings/{l}", None),
    ]:
        theirs = await intruder(
            method, path.format(c=theirs_connection, l=theirs_listing), json=body
        )
        missing = await intruder(method, path.format(c=MISSING_ID, l=MISSING_ID), json=body)
        assert theirs.status_code == missing.status_code == 404, path
        assert theirs.json() == missing.json()

    for path, body, missing_body in [
        (
            "/api/listings",
            {
                "mlsConnectionId": theirs_connection,
                "listingKey": "K2",
                "mlsNumber": "M",
                "status": "active",
            },
            {
                "mlsConnectionId": MISSING_ID,
                "listingKey": "K2",
                "mlsNumber": "M",
                "status": "active",
            },
        ),
        (
            "/api/posts",
            {"listingId": theirs_listing, "platform": "x", "platformPostId": "1"},
            {"listingId": MISSING_ID, "platform": "x", "platformPostId": "1"},
        ),
    ]:
        theirs = await intruder("POST", path, json=body)
        missing = await intruder("POST", path, json=missing_body)
        assert theirs.status_code == missing.status_code == 404, path
        assert theirs.json() == missing.json()

    assert (await intruder("GET", "/api/mls-connections")).json() == []
    assert (await intruder("GET", "/api/listings")).json() == []
    assert (
        await intruder("GET", "/api/listings", params={"mlsConnectionId": theirs_connection})
    ).json() == []
    assert (await intruder("GET", "/api/posts", params={"listingId": theirs_listing})).json() == []
    assert reso.request_count == 0
    # The owner still has it all, unchanged.
    mine = (
        await api.get(f"/api/mls-connections/{theirs_connection}", headers=bearer(owner_key))
    ).json()
    assert mine["name"] == ""
