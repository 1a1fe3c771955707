"""The service as `mls-sync serve` runs it: uvicorn on a socket, the app opening its own
runtime and scheduler in its lifespan. Health probes; a user sets up over HTTP, the scheduler
loads the new feed and keeps its cadence, the cron endpoint syncs the change; a schemathesis run
over the OpenAPI schema finds no 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr

from api_support import CRON_SECRET, api_client, bearer, migrated_with_user, service_settings
from mls_sync.api import create_app
from mls_sync.config import Settings
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.store.database import Database
from polling import eventually

# probes, in process


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(runtime) as client:
        yield client


async def test_healthz_says_the_process_is_up(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_says_the_database_answers(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "database": "ok"})


async def test_readyz_is_503_while_the_database_is_unreachable(settings: Settings) -> None:
    unreachable = Database("postgresql://nobody@127.0.0.1:1/none")
    async with open_runtime(settings, db=unreachable) as runtime, api_client(runtime) as api:
        response = await api.get("/readyz")
    await unreachable.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


async def test_the_openapi_document_describes_every_route(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    assert {
        "/api/cron/sync-mls-status",
        "/api/sync",
        "/api/mls-connections/{connection_id}/sync",
        "/api/listings/{listing_id}/sync",
        "/api/mls-connections",
        "/api/mls-connections/{connection_id}",
        "/api/mls-connections/{connection_id}/listings/import",
        "/api/listings",
        "/api/platform-connections/{platform}",
        "/api/posts",
        "/api/admin/feeds",
        "/api/admin/feeds/{feed_id}",
        "/api/admin/feeds/{feed_id}/sync",
        "/healthz",
        "/readyz",
    } <= set(schema["paths"])
    assert (await api.get("/docs")).status_code == 200


# the real server


def served_settings(settings: Settings, tmp_path: Path, **changes: object) -> Settings:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    served = service_settings(settings, database_url=url, **changes)
    assert "served.db" in served.async_database_url
    return served


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, str, Settings]]:
    """(url, API key, settings) of a server on a fresh SQLite file, scheduling every second."""
    app_settings = served_settings(
        settings, tmp_path, scheduler_enabled=True, schedule_cron="* * * * * *"
    )
    key = asyncio.run(migrated_with_user(app_settings))
    with BackgroundServer(create_app(app_settings), lifespan="on") as server:
        yield server.url, key, app_settings


async def test_set_up_over_http_the_schedule_loads_the_feed_once_and_cron_syncs_the_change(
    served: tuple[str, str, Settings],
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
) -> None:
    """The scheduler ticks every second, but runs a feed only when its cadence (15 minutes
    by default) has come: a new feed at once (its first load), then not again in the test.
    The cron endpoint runs every active feed whatever its cadence."""
    url, key, _ = served
    reso.add_listing("K1", "MLS-1", "Active")
    platforms.add_token("facebook", "fb-token")
    platforms.add_post("facebook", "10_20")
    async with httpx.AsyncClient(base_url=url, headers=bearer(key), timeout=10) as api:
        connection = (
            await api.post("/api/mls-connections", json={"baseUrl": reso_url, "token": "mls-token"})
        ).json()
        path = f"/api/mls-connections/{connection['id']}"

        async def loaded() -> bool:  # the first scheduled run loads the connection's feed
            return (await api.get(path)).json()["lastSyncAt"] is not None

        await eventually(loaded, within=10, what="a scheduled run to load the MLS feed")
        after_load = reso.request_count
        registered = await api.post(  # from the replica the load filled
            "/api/listings", json={"mlsConnectionId": connection["id"], "listingKey": "K1"}
        )
        assert registered.status_code == 201, registered.text
        listing = registered.json()
        assert (listing["mlsNumber"], listing["status"]) == ("MLS-1", "active")
        await api.put("/api/platform-connections/facebook", json={"accessToken": "fb-token"})
        await api.post(
            "/api/posts",
            json={"listingId": listing["id"], "platform": "facebook", "platformPostId": "10_20"},
        )
        reso.set_status("K1", "Closed")

        await asyncio.sleep(2.5)  # two ticks and more: the feed is not due again yet
        assert reso.request_count == after_load
        assert (await api.get("/api/posts")).json()[0]["status"] == "published"

        cron = await api.post("/api/cron/sync-mls-status", headers=bearer(CRON_SECRET))

        assert cron.status_code == 200
        assert (
            cron.json()["data"]["updatedListings"],
            cron.json()["data"]["unpublishedPosts"],
        ) == (
            1,
            1,
        )
        assert (await api.get("/api/posts")).json()[0]["status"] == "unpublished"
        listings = (await api.get("/api/listings")).json()
        assert listings[0]["status"] == "sold"
        assert not platforms.has_post("facebook", "10_20")


# schemathesis


OPERATIONS_THAT_SYNC_EVERYTHING = {"POST /api/sync", "POST /api/cron/sync-mls-status"}
ADMIN_KEY = "test-admin-key"


def test_schemathesis_finds_no_server_error_and_no_undocumented_status(
    settings: Settings, tmp_path: Path
) -> None:
    """Generated requests, with no key, a user's API key and the operator's admin key,
    against the real server on SQLite (the admin routes enabled, so that they are exercised
    rather than answering 503): none answers 5xx, and every status answered is one the
    OpenAPI document names for that operation. Syncs of everything are left out of the keyed
    passes: the connections and feeds they create point at generated hosts, and a test must not
    reach out to them. The sign-in throttle is off: the keyless pass would otherwise turn the
    keyed ones into 429s (which every authenticated operation documents all the same)."""
    import schemathesis

    app_settings = served_settings(
        settings,
        tmp_path,
        mls_timeout_seconds=0.5,
        admin_api_key=SecretStr(ADMIN_KEY),
        auth_failures_per_minute=0,
    )
    key = asyncio.run(migrated_with_user(app_settings))
    failures: list[str] = []
    with BackgroundServer(create_app(app_settings), lifespan="on") as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            for headers in ({}, bearer(key), bearer(ADMIN_KEY)):
                if headers and label in OPERATIONS_THAT_SYNC_EVERYTHING:
                    continue
                check_operation(operation, server.url, headers, failures, label)
    assert "\n".join(sorted(set(failures))) == ""


def check_operation(
    operation: object, url: str, headers: dict[str, str], failures: list[str], label: str
) -> None:
    documented = set(operation.definition.raw["responses"])  # type: ignore[attr-defined]

    @given(case=operation.as_strategy())  # type: ignore[attr-defined]
    @hypothesis_settings(
        max_examples=20,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: object) -> None:
        response = case.call(base_url=url, headers=headers)  # type: ignore[attr-defined]
        code = response.status_code
        if code >= 500:
            failures.append(f"{label} -> {code}: {response.text[:200]}")
        elif str(code) not in documented and "default" not in documented:
            failures.append(f"{label} -> {code} (undocumented)")

    run()
