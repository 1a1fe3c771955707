"""Profiles as the vendors behave today: Trestle's retired hosts still reach Trestle (at
api.cotality.com, for data and tokens alike), Spark's replication starts 20 minutes behind
its last run, as Spark asks, and Bridge pages by its API version, never asks `in`, and reads
both of its rate-limit header families."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from factories import join, seed_shared_feed
from mls_sync.domain.status import ListingStatus as S
from mls_sync.mls.errors import MlsFilterRefused
from mls_sync.mls.limits import RateBudgets, quota_from_headers
from mls_sync.mls.profiles import PROFILES
from mls_sync.mls.transport import RetryPolicy
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.reso_vendors import MLSGRID_FILTERABLE
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.models import MlsFeed
from mls_sync.store.types import utcnow
from mls_sync.sync import runs
from mls_sync.sync.clients import ClientFactory, ConnectionConfigError

CIPHER = TokenCipher([TokenCipher.generate_key()])


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        (
            "https://api-trestle.corelogic.com/trestle/odata",
            "https://api.cotality.com/trestle/odata",
        ),
        (
            "https://api-prod.corelogic.com/trestle/odata/",
            "https://api.cotality.com/trestle/odata/",
        ),
        ("https://api.cotality.com/trestle/odata", "https://api.cotality.com/trestle/odata"),
        ("https://mls.example.com/odata", "https://mls.example.com/odata"),  # not Trestle's
    ],
)
def test_trestles_retired_hosts_are_asked_at_the_new_one(stored: str, asked: str) -> None:
    assert PROFILES["trestle"].current_url(stored) == asked
    # Only Trestle's profile knows Trestle's hosts.
    assert PROFILES["generic"].current_url(stored) == stored


@pytest.fixture
async def trestle_at_cotality() -> AsyncIterator[tuple[ResoSandbox, httpx.AsyncClient]]:
    """The sandbox mounted where Trestle serves (/trestle/odata, /trestle/oidc/connect/token),
    answering whatever host is asked: which host our requests name is what is checked."""
    sandbox = ResoSandbox(tokens=())
    sandbox.oauth.add_client("vendor-id", "vendor-secret")
    sandbox.add_listing("K1", "MLS-1", "Active")
    app = Starlette(
        routes=[
            Route("/trestle/oidc/connect/token", sandbox.oauth.endpoint, methods=["POST"]),
            Mount("/trestle/odata", app=sandbox.app),
        ]
    )
    seen: list[httpx.URL] = []

    async def note(request: httpx.Request) -> None:
        seen.append(request.url)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), event_hooks={"request": [note]}
    ) as http:
        http.seen = seen  # type: ignore[attr-defined]
        yield sandbox, http


async def test_a_feed_stored_with_a_retired_trestle_host_asks_api_cotality_com(
    trestle_at_cotality: tuple[ResoSandbox, httpx.AsyncClient],
) -> None:
    sandbox, http = trestle_at_cotality
    feed = MlsFeed(
        id="feed-1",
        provider="trestle",
        auth_kind="oauth2",
        base_url="https://api-trestle.corelogic.com/trestle/odata",
        credentials_encrypted=CIPHER.encrypt(
            json.dumps({"client_id": "vendor-id", "client_secret": "vendor-secret"})
        ),
        profile_overrides={},
    )
    factory = ClientFactory(http, CIPHER, RateBudgets(50.0), retry=RetryPolicy(), batch_size=50)
    found = await factory.build(feed).fetch_by_keys(["K1"])
    assert "K1" in found
    hosts = {url.host for url in http.seen}  # type: ignore[attr-defined]
    assert hosts == {"api.cotality.com"}
    paths = [url.path for url in http.seen]  # type: ignore[attr-defined]
    assert paths[0] == "/trestle/oidc/connect/token"  # the token, from the new host too
    assert sandbox.oauth.issued == 1


@pytest.mark.parametrize(("provider", "seen"), [("spark", True), ("generic", False)])
async def test_spark_replication_reads_again_the_twenty_minutes_before_its_last_run(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, provider: str, seen: bool
) -> None:
    """A change the vendor stamps ten minutes late (its ModificationTimestamp older than our
    last run's start) is read by the next Spark run, whose window reaches 20 minutes back;
    a generic server's run (5 minutes of clock skew) leaves it to the reconciliation."""
    reso.add_listing("K1", "MLS-1", "Active", modification_timestamp=utcnow() - timedelta(hours=2))
    feed_id = await seed_shared_feed(
        runtime,
        reso_url,
        token="mls-token",
        provider=provider,
        profile_overrides={"page_size": 200},
        key_field=None,
    )
    await join(runtime, feed_id, holding={"K1": S.ACTIVE})
    assert (await runs.sync_feed(runtime.engine, feed_id, trigger="manual")).success  # the load

    reso.add_listing(
        "K1", "MLS-1", "Closed", modification_timestamp=utcnow() - timedelta(minutes=10)
    )
    ran = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert ran.success
    assert (ran.result.updated_listings == 1) is seen


@pytest.fixture
def bridge_url(reso: ResoSandbox) -> Iterator[str]:
    """The sandbox where Bridge serves a dataset, on both API versions (over real HTTP)."""
    app = Starlette(
        routes=[
            Mount("/api/v2/OData/ds", app=reso.app),
            Mount("/api/v3/OData/ds", app=reso.app),
        ]
    )
    with BackgroundServer(app) as server:
        yield server.url


@pytest.mark.parametrize(
    ("version", "top", "prefer"),
    [("v2", "200", None), ("v3", None, "odata.maxpagesize=200")],
)
async def test_bridge_pages_by_top_on_v2_and_by_prefer_on_v3_and_never_asks_in(
    http: httpx.AsyncClient,
    reso: ResoSandbox,
    bridge_url: str,
    version: str,
    top: str | None,
    prefer: str | None,
) -> None:
    """Bridge v2 reads `$top` as the page size (at most 200; default 10); v3 reads it as the
    collection size and takes the page size from `Prefer: odata.maxpagesize`. Bridge has no
    `in`: a lookup is an `or` chain from the first request. Increments ride Bridge's own
    timestamp."""
    reso.vendor = "bridge"  # refuses `in`, a $top over 200 on v2, serves its timestamp
    for n in range(3):
        reso.add_listing(f"K{n}", f"MLS-{n}", "Active")
    feed = MlsFeed(
        id="bridge-feed",
        provider="bridge",
        auth_kind="bearer",
        base_url=f"{bridge_url}/api/{version}/OData/ds",
        credentials_encrypted=CIPHER.encrypt("mls-token"),
        profile_overrides={},
    )
    client = ClientFactory(
        http, CIPHER, RateBudgets(50.0), retry=RetryPolicy(), batch_size=50
    ).build(feed)

    pages = [page async for page in client.fetch_changes_since(None)]
    found = await client.fetch_by_keys(["K0", "K1"])

    assert sum(len(page) for page in pages) == 3 and set(found) == {"K0", "K1"}
    replication, lookup = reso.requests[0], reso.requests[-1]
    assert replication.params.get("$top") == top
    assert replication.headers.get("prefer") == prefer
    assert replication.params["$filter"].startswith("BridgeModificationTimestamp ge ")
    assert " in " not in lookup.params["$filter"] and " or " in lookup.params["$filter"]
    assert len(reso.requests) == 2  # no refused `in` first


async def test_bridge_increments_see_a_correction_bridge_made_itself(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    """Bridge's own changes move BridgeModificationTimestamp, not the MLS's
    ModificationTimestamp: increments on the MLS's field would never see them."""
    reso.vendor = "bridge"
    long_ago = utcnow() - timedelta(days=1)
    reso.add_listing("K1", "MLS-K1", "Active", modification_timestamp=long_ago)
    feed_id = await seed_shared_feed(
        runtime, f"{reso_url}/api/v2/OData/ds", token="mls-token", provider="bridge"
    )
    held = (await join(runtime, feed_id, holding={"K1": S.ACTIVE})).listings["K1"]
    assert (await runs.sync_feed(runtime.engine, feed_id, trigger="manual")).success
    before = reso.listing("K1").modification_timestamp
    reso.vendor_correction("K1", "Closed")
    assert reso.listing("K1").modification_timestamp == before  # the MLS's: unmoved

    corrected = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert corrected.success and corrected.result.updated_listings == 1
    async with runtime.db.transaction() as session:
        listing = await session.listings.lock(held.id)
    assert listing is not None and listing.status == S.SOLD


def test_bridges_hourly_and_burst_headers_both_tighten_the_budget() -> None:
    # The application's hourly figure lowers the hourly budget (the lower of the families').
    assert quota_from_headers({"application-ratelimit-limit": "5000"}) == (5000, None)
    assert quota_from_headers(
        {"application-ratelimit-limit": "5000", "hour-quota-limit": "3000"}
    ) == (3000, None)
    # Either family spent: a pause until its reset (seconds to wait, or an epoch).
    limit, pause = quota_from_headers(
        {"application-ratelimit-remaining": "0", "application-ratelimit-reset": "120"}
    )
    assert limit is None and pause == 120
    _, pause = quota_from_headers(
        {
            "burst-ratelimit-remaining": "0",
            "burst-ratelimit-reset": "30",
            "application-ratelimit-remaining": "0",
            "application-ratelimit-reset": "600",
        }
    )
    assert pause == 600  # the later of the two
    assert quota_from_headers({"application-ratelimit-remaining": "12"}) == (None, None)
    assert quota_from_headers({"application-ratelimit-limit": "inf"}) == (None, None)


def test_the_mls_grid_profile_filters_on_exactly_what_the_sandboxs_mls_grid_mode_accepts() -> None:
    assert PROFILES["mlsgrid"].filterable_fields == MLSGRID_FILTERABLE


async def test_a_filter_mls_grid_refuses_is_never_sent(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    """ListingKey is not filterable on MLS Grid: a client keyed by it says so before asking
    (the 400 would count against the token's budget), and a feed keyed by it cannot run."""
    reso.vendor = "mlsgrid"
    factory = ClientFactory(http, CIPHER, RateBudgets(50.0), retry=RetryPolicy(), batch_size=50)
    feed = MlsFeed(
        id="grid-feed",
        provider="mlsgrid",
        auth_kind="bearer",
        base_url=reso_url,
        credentials_encrypted=CIPHER.encrypt("mls-token"),
        profile_overrides={"originating_system_name": "sandbox"},
        key_field="ListingKey",
    )
    with pytest.raises(ConnectionConfigError, match="mlsgrid cannot filter on ListingKey"):
        factory.build(feed)
    feed.key_field = None  # the profile's: ListingId
    client = factory.build(feed)
    client.key_field = "ListingKey"  # as a caller that ignored the profile would
    with pytest.raises(MlsFilterRefused, match="cannot filter on ListingKey"):
        await client.fetch_by_keys(["K1"])
    assert reso.request_count == 0
