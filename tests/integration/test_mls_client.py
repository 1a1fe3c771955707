"""The RESO client against the sandbox MLS over HTTP: auth, batching, vendor rules, retries,
rate limits and payload validation. Engine-level tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from factories import seed_user
from mls_sync.domain.status import ConnectionState
from mls_sync.domain.status import ListingStatus as S
from mls_sync.mls.auth import StaticBearer
from mls_sync.mls.client import ResoClient
from mls_sync.mls.errors import (
    MLS_CONNECTION_EXPIRED,
    MlsAuthError,
    MlsBudgetExhausted,
    MlsCredentialSuspended,
    MlsRequestError,
)
from mls_sync.mls.limits import RateBudgets, RequestBudget
from mls_sync.mls.profiles import PROFILES, VendorProfile, resolve_profile
from mls_sync.mls.transport import MlsTransport, RetryPolicy
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.reso_vendors import Fault
from mls_sync.store import repositories as repo
from mls_sync.store.models import MlsConnection, MlsFeed

NOT_FOUND = "Listing not found in MLS"
# A record stamped before any bookmark: replication cannot see it, a reconciliation finds it.
BACKDATED = datetime.now(UTC) - timedelta(days=1)

FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        yield client


def client_for(
    http: httpx.AsyncClient,
    url: str,
    profile: VendorProfile = PROFILES["generic"],
    *,
    token: str = "mls-token",
    budget: RequestBudget | None = None,
    key_field: str = "ListingKey",
) -> ResoClient:
    transport = MlsTransport(
        http, StaticBearer(token), profile=profile, budget=budget, retry=FAST_RETRY
    )
    return ResoClient(
        http,
        base_url=url,
        key_field=key_field,
        filter_style=profile.filter_style,
        transport=transport,
        profile=profile,
    )


async def seed(
    runtime: Runtime,
    reso: ResoSandbox,
    url: str,
    keys: list[str],
    *,
    provider: str = "generic",
    key_field: str = "ListingKey",
    token: str | None = "mls-token",
    auth_kind: str = "bearer",
    credentials: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> str:
    user_id = await seed_user(runtime)
    async with runtime.db.transaction() as session:
        connection = await repo.create_mls_connection(
            session,
            runtime.cipher,
            user_id=user_id,
            base_url=url,
            token=token,
            provider=provider,
            key_field=key_field,
            auth_kind=auth_kind,
            credentials=credentials,
            profile_overrides=overrides,
        )
        for key in keys:
            reso.add_listing(key, f"MLS-{key}", "Active")
            await repo.add_listing(
                session, connection=connection, listing_key=key, mls_number=f"MLS-{key}"
            )
    return connection.id


async def stored(runtime: Runtime, connection_id: str) -> MlsConnection:
    async with runtime.db.transaction() as session:
        connection = await session.get(MlsConnection, connection_id)
        assert connection is not None
        return connection


async def stored_feed(runtime: Runtime, connection_id: str) -> MlsFeed:
    """The connection's (private) feed: credentials, key field, filter style, replica state."""
    async with runtime.db.transaction() as session:
        connection = await session.get(MlsConnection, connection_id)
        assert connection is not None
        return await repo.feed_of(session, connection)


async def listing_of(runtime: Runtime, connection_id: str, key: str) -> str:
    async with runtime.db.transaction() as session:
        listing = await session.listings.by_key(connection_id, key)
        assert listing is not None
        return listing.id


async def replica_statuses(runtime: Runtime, connection_id: str) -> dict[str, str | None]:
    feed = await stored_feed(runtime, connection_id)
    async with runtime.db.transaction() as session:
        rows = await session.replica.find(feed.id)
    return {row.listing_key: None if row.gone else row.standard_status for row in rows}


# 1. auth: static bearer or OAuth2 client credentials, refetched once on 401


async def oauth_connection(runtime: Runtime, reso: ResoSandbox, url: str) -> str:
    reso.oauth.add_client("client-1", "s3cret")
    return await seed(
        runtime,
        reso,
        url,
        ["K1"],
        token=None,
        auth_kind="oauth2",
        credentials={"client_id": "client-1", "client_secret": "s3cret"},
        overrides={"token_url": f"{url}/token", "scope": "api"},
    )


async def test_oauth2_token_is_fetched_once_and_cached_across_runs(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await oauth_connection(runtime, reso, reso_url)
    reso.set_status("K1", "Closed")

    first = await runtime.engine.sync_connection(connection_id)
    second = await runtime.engine.sync_connection(connection_id)

    assert first.success and second.success
    assert first.result.updated_listings == 1
    assert reso.oauth.issued == 1
    assert "s3cret" not in (await stored_feed(runtime, connection_id)).credentials_encrypted


async def test_an_expired_oauth2_token_is_fetched_again_once_on_401(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await oauth_connection(runtime, reso, reso_url)
    await runtime.engine.sync_connection(connection_id)
    reso.oauth.expire_all()

    outcome = await runtime.engine.sync_connection(connection_id)

    assert outcome.success
    assert reso.oauth.issued == 2
    assert (await stored(runtime, connection_id)).state == ConnectionState.ACTIVE


async def test_a_client_the_token_endpoint_rejects_expires_the_connection(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await oauth_connection(runtime, reso, reso_url)
    await runtime.engine.sync_connection(connection_id)
    reso.oauth.expire_all()
    reso.oauth.reject_client("client-1")

    outcome = await runtime.engine.sync_connection(connection_id)

    assert (outcome.success, outcome.message) == (False, MLS_CONNECTION_EXPIRED)
    assert (await stored(runtime, connection_id)).state == ConnectionState.EXPIRED


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_auth_failures(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str, status: int
) -> None:
    reso.fail_next.append(status)
    with pytest.raises(MlsAuthError):
        await client_for(http, reso_url).fetch_by_keys(["K1"])


@pytest.mark.parametrize("code", [1000, 1020])
async def test_spark_auth_codes_are_auth_failures(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str, code: int
) -> None:
    body = {"error": {"code": code, "message": "Session token has expired"}}
    reso.fail_next.append(Fault(status=401, body=body))
    with pytest.raises(MlsAuthError):
        await client_for(http, reso_url, PROFILES["spark"]).fetch_by_keys(["K1"])


# 2. batching: `in`, falling back to `or` on 400 and remembered; MLS Grid's rules


async def test_in_falls_back_to_or_chains_and_the_feed_remembers(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.supports_in = False
    connection_id = await seed(runtime, reso, reso_url, ["K1"])
    await runtime.engine.sync_connection(connection_id)  # the load names no keys
    reso.add_listing("K2", "MLS-K2", "Closed", modification_timestamp=BACKDATED)
    reso.add_listing("K3", "MLS-K3", "Pending", modification_timestamp=BACKDATED)
    before = reso.request_count

    reconciled = await runtime.engine.sync_connection(connection_id, full=True)

    assert reconciled.success
    _replication, _pull, tried, fell_back = reso.requests[before:]
    assert (tried.params["$filter"], fell_back.params["$filter"]) == (
        "ListingKey in ('K2','K3')",
        "ListingKey eq 'K2' or ListingKey eq 'K3'",
    )
    assert await replica_statuses(runtime, connection_id) == {
        "K1": "Active",
        "K2": "Closed",
        "K3": "Pending",
    }
    assert (await stored_feed(runtime, connection_id)).filter_style == "or"
    before = reso.request_count
    await runtime.engine.sync_listing(await listing_of(runtime, connection_id, "K1"))
    assert [r.params["$filter"] for r in reso.requests[before:]] == ["ListingKey eq 'K1'"]


async def test_mls_grid_rules_are_kept_on_the_load_replication_and_reconciliation(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.vendor = "mlsgrid"
    keys = [f"K{n:02d}" for n in range(14)]
    connection_id = await seed(
        runtime,
        reso,
        reso_url,
        keys,
        provider="mlsgrid",
        key_field="ListingId",
        overrides={"originating_system_name": "sandbox"},
    )
    reso.set_status("K03", "Pending")

    loaded = await runtime.engine.sync_connection(connection_id)

    assert loaded.success and loaded.result.updated_listings == 1
    [load] = reso.requests
    assert load.params["$filter"] == (
        "OriginatingSystemName eq 'sandbox' and ModificationTimestamp ge 1970-01-01T00:00:00.000Z"
    )
    assert load.params["$top"] == "5000"  # the largest page MLS Grid serves
    reso.hide("K05")  # MlgCanView false: the record must go

    changes = await runtime.engine.sync_connection(connection_id)

    assert [(e.mls_number, e.error) for e in changes.result.errors] == [("MLS-K05", NOT_FOUND)]
    assert (
        reso.requests[-1]
        .params["$filter"]
        .startswith("OriginatingSystemName eq 'sandbox' and ModificationTimestamp ge ")
    )
    reso.add_listing("K20", "MLS-K20", "Active", modification_timestamp=BACKDATED)
    before = reso.request_count

    reconciled = await runtime.engine.sync_connection(connection_id, full=True)

    assert reconciled.success
    _replication, pull, lookup = reso.requests[before:]
    assert pull.params["$select"] == "ListingKey,ListingId,ModificationTimestamp,MlgCanView"
    # By ListingId: MLS Grid cannot filter on ListingKey.
    assert lookup.params["$filter"] == (
        "OriginatingSystemName eq 'sandbox' and ListingId in ('MLS-K20')"
    )
    for request in reso.requests:  # every request, whichever part of the run sent it
        query = request.params["$filter"]
        assert query.count("OriginatingSystemName eq 'sandbox'") == 1
        assert "ListingKey" not in query and query.count(" or ") <= 5
        assert "gzip" in request.headers["accept-encoding"]
        assert "MlgCanView" in request.params["$select"]


async def test_a_record_mls_grid_hides_is_gone_on_the_load_and_on_each_reconciliation(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.vendor = "mlsgrid"
    connection_id = await seed(
        runtime,
        reso,
        reso_url,
        ["K01", "K02"],
        provider="mlsgrid",
        key_field="ListingId",
        overrides={"originating_system_name": "sandbox"},
    )
    reso.hide("K01")  # MlgCanView false, but the record still comes back

    loaded = await runtime.engine.sync_connection(connection_id)
    reconciled = await runtime.engine.sync_connection(connection_id, full=True)

    for outcome in (loaded, reconciled):
        assert [(e.mls_number, e.error) for e in outcome.result.errors] == [("MLS-K01", NOT_FOUND)]
    assert await replica_statuses(runtime, connection_id) == {"K01": None, "K02": "Active"}


async def test_mls_grid_refuses_requests_without_gzip(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    reso.vendor = "mlsgrid"
    response = await http.get(f"{reso_url}/Property", headers={"Accept-Encoding": "identity"})
    assert (response.status_code, response.json()["error"]["message"]) == (
        400,
        "COMPRESSION REQUIRED",
    )


async def test_bridge_asks_for_its_page_size_with_prefer_maxpagesize(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    reso.vendor = "bridge"
    reso.add_listing("K1", "MLS-K1", "Active")
    await client_for(http, reso_url, PROFILES["bridge"]).fetch_by_keys(["K1"])
    assert reso.requests[0].headers["prefer"] == "odata.maxpagesize=200"


async def test_top_is_capped_at_the_vendors_maximum(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    profile = resolve_profile("generic", {"top_cap": 2})
    for n in range(3):
        reso.add_listing(f"K{n}", f"MLS-{n}", "Active")
    client = client_for(http, reso_url, profile)
    await client.fetch_by_keys(["K0", "K1", "K2"])
    assert reso.requests[0].params["$top"] == "2"


# 4. retries, 429 and budgets


async def test_server_errors_are_retried_with_backoff_then_succeed(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_listing("K1", "MLS-K1", "Closed")
    reso.fail_next.extend([503, 502])
    records = await client_for(http, reso_url).fetch_by_keys(["K1"])
    assert records["K1"].standard_status == "Closed"
    assert reso.request_count == 3


async def test_429_waits_for_retry_after_then_retries(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    reso.add_listing("K1", "MLS-K1", "Active")
    reso.fail_next.append(Fault(status=429, body={"error": {}}, headers={"Retry-After": "1"}))
    budget = RequestBudget(per_second=50)
    records = await client_for(http, reso_url, budget=budget).fetch_by_keys(["K1"])
    first, second = reso.requests
    assert "K1" in records
    assert second.at - first.at >= 1.0  # nobody on the credential asked again before it


async def test_spark_over_rate_limit_code_rests_the_credential_whatever_the_status(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    """Spark's 1550 comes with 503 (documented) or 429 (seen): the code decides, and it is a
    punishment: no retry a second later, the credential rests the profile's five minutes."""
    reso.add_listing("K1", "MLS-K1", "Active")
    body = {"error": {"code": 1550, "message": "Over rate limit"}}
    reso.fail_next.append(Fault(status=503, body=body, headers={"Retry-After": "0"}))
    with pytest.raises(MlsCredentialSuspended) as suspended:
        await client_for(http, reso_url, PROFILES["spark"]).fetch_by_keys(["K1"])
    assert reso.request_count == 1
    assert suspended.value.until >= datetime.now(UTC) + timedelta(seconds=299)


async def test_mls_grid_429_suspends_for_the_longer_of_its_hour_and_retry_after(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    reso.vendor = "mlsgrid"
    body = {"error": {"code": "429", "message": "Too Many Requests"}}
    reso.fail_next.append(Fault(status=429, body=body, headers={"Retry-After": "7200"}))
    profile = dataclasses.replace(PROFILES["mlsgrid"], originating_system_name="sandbox")
    with pytest.raises(MlsCredentialSuspended) as suspended:
        await client_for(http, reso_url, profile, key_field="ListingId").fetch_by_keys(["K1"])
    assert reso.request_count == 1
    assert suspended.value.until >= datetime.now(UTC) + timedelta(seconds=7199)


async def test_connections_sharing_a_credential_share_one_per_second_budget(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    budgets = RateBudgets(2.0)
    profile = PROFILES["mlsgrid"]
    shared = [budgets.for_connection(profile, reso_url, "token:mls-token") for _ in range(2)]
    assert shared[0] is shared[1]
    assert budgets.for_connection(profile, reso_url, "token:other") is not shared[0]
    reso.add_listing("K1", "MLS-K1", "Active")
    clients = [client_for(http, reso_url, budget=b) for b in shared]

    await asyncio.gather(*(c.fetch_by_keys(["K1"]) for c in clients for _ in range(3)))

    stamps = sorted(r.at for r in reso.requests)
    assert len(stamps) == 6
    # No one-second window holds more than 2 requests: counted at the server.
    assert all(later - earlier >= 0.95 for earlier, later in zip(stamps, stamps[2:], strict=False))


def test_hourly_and_daily_budgets_refuse_rather_than_overspend() -> None:
    async def run() -> None:
        budget = RequestBudget(per_second=1000, per_hour=3, per_day=100, max_wait=0)
        for _ in range(3):
            await budget.acquire()
        with pytest.raises(MlsBudgetExhausted, match="hour"):
            await budget.acquire()

    asyncio.run(run())


def test_vendor_quota_headers_tighten_or_pause_the_budget() -> None:
    async def run() -> None:
        trestle = RequestBudget(per_second=1000, per_hour=7200, max_wait=0)
        trestle.observe({"hour-quota-limit": "1"})
        await trestle.acquire()
        with pytest.raises(MlsBudgetExhausted):
            await trestle.acquire()
        bridge = RequestBudget(per_second=1000, max_wait=0)
        bridge.observe({"burst-ratelimit-remaining": "0", "burst-ratelimit-reset": "30"})
        with pytest.raises(MlsBudgetExhausted):
            await bridge.acquire()

    asyncio.run(run())


# 5. payload validation


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html>Service Unavailable</html>", "Malformed MLS response: body is not JSON"),
        ({"items": []}, "Malformed MLS response: no 'value' array"),
        (
            {"value": [{"ListingId": "MLS-K1"}]},
            "Malformed MLS response: a record has no ListingKey",
        ),
    ],
)
async def test_malformed_answers_are_request_errors(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str, body: Any, message: str
) -> None:
    reso.fail_next.append(Fault(status=200, body=body))
    with pytest.raises(MlsRequestError) as raised:
        await client_for(http, reso_url).fetch_by_keys(["K1"])
    assert str(raised.value) == message


async def test_a_malformed_answer_stops_the_run_and_never_becomes_a_status(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await seed(runtime, reso, reso_url, ["K1"])
    reso.set_status("K1", "Closed")
    reso.fail_next.append(Fault(status=200, body="not json"))

    outcome = await runtime.engine.sync_connection(connection_id)

    assert (outcome.success, outcome.message) == (
        False,
        "MLS replication stopped: Malformed MLS response: body is not JSON",
    )
    assert outcome.result.errors == []  # the feed's answer was bad, not a listing
    async with runtime.db.transaction() as session:
        [listing] = await session.listings.of_connection(connection_id)
    assert listing.status == S.ACTIVE
    assert (await stored_feed(runtime, connection_id)).loaded_at is None
    assert await replica_statuses(runtime, connection_id) == {}

    retried = await runtime.engine.sync_connection(connection_id)

    assert [c.new_status for c in retried.result.status_changes] == [S.SOLD]


async def test_both_status_wire_forms_are_understood(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    reso.status_labels = True
    connection_id = await seed(runtime, reso, reso_url, ["K1"])
    reso.set_status("K1", "ActiveUnderContract")

    outcome = await runtime.engine.sync_connection(connection_id)

    assert [c.new_status for c in outcome.result.status_changes] == [S.PENDING]


# 6. profiles


def test_a_connection_may_override_any_profile_field() -> None:
    profile = resolve_profile("mlsgrid", {"originating_system_name": "mred", "batch_size": 25})
    assert (profile.originating_system_name, profile.batch_size) == ("mred", 25)
    assert profile.requests_per_day == 40000
    with pytest.raises(ValueError, match="unknown MLS profile field"):
        resolve_profile("trestle", {"tokenurl": "x"})
    with pytest.raises(ValueError, match="unknown MLS profile"):
        resolve_profile("nope")
