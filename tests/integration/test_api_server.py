"""The service as `mls-sync serve` runs it: uvicorn on a socket, the app opening its own
runtime and scheduler in its lifespan. Health probes; a user sets up over HTTP and the next
scheduled run syncs; a schemathesis run over the OpenAPI schema finds no 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings

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


async def test_set_up_over_http_and_the_next_scheduled_run_syncs(
    served: tuple[str, str, Settings],
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
) -> None:
    url, key, _ = served
    reso.add_listing("K1", "MLS-1", "Active")
    platforms.add_token("facebook", "fb-token")
    platforms.add_post("facebook", "10_20")
    async with httpx.AsyncClient(base_url=url, headers=bearer(key), timeout=10) as api:
        connection = (
            await api.post("/api/mls-connections", json={"baseUrl": reso_url, "token": "mls-token"})
        ).json()
        listing = (
            await api.post(
                "/api/listings", json={"mlsConnectionId": connection["id"], "listingKey": "K1"}
            )
        ).json()
        await api.put("/api/platform-connections/facebook", json={"accessToken": "fb-token"})
        await api.post(
            "/api/posts",
            json={"listingId": listing["id"], "platform": "facebook", "platformPostId": "10_20"},
        )

        reso.set_status("K1", "Closed")

        async def sold_and_taken_down() -> bool:
            posts = (await api.get("/api/posts")).json()
            return posts[0]["status"] == "unpublished"

        await eventually(sold_and_taken_down, within=10, what="a scheduled run to take it down")
        listings = (await api.get("/api/listings")).json()
        assert listings[0]["status"] == "sold"
        assert not platforms.has_post("facebook", "10_20")
        cron = await api.post("/api/cron/sync-mls-status", headers=bearer(CRON_SECRET))
        assert cron.status_code == 200


# schemathesis


OPERATIONS_THAT_SYNC_EVERYTHING = {"POST /api/sync", "POST /api/cron/sync-mls-status"}


def test_schemathesis_finds_no_server_error(settings: Settings, tmp_path: Path) -> None:
    """Generated requests, with and without a valid API key, against the real server on
    SQLite. Syncs of everything are left out of the keyed pass: the connections it creates
    point at generated hosts, and a test must not reach out to them."""
    import schemathesis

    app_settings = served_settings(settings, tmp_path, mls_timeout_seconds=0.5)
    key = asyncio.run(migrated_with_user(app_settings))
    failures: list[str] = []
    with BackgroundServer(create_app(app_settings), lifespan="on") as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            for headers in ({}, bearer(key)):
                if headers and label in OPERATIONS_THAT_SYNC_EVERYTHING:
                    continue
                check_operation(operation, server.url, headers, failures, label)
    assert failures == []


def check_operation(
    operation: object, url: str, headers: dict[str, str], failures: list[str], label: str
) -> None:
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
        if response.status_code >= 500:
            failures.append(f"{label} -> {response.status_code}: {response.text[:200]}")

    run()
