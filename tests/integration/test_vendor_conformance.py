"""Conformance: one scenario, every vendor. Each vendor mode of the sandbox refuses what that
vendor refuses (sandbox/reso_vendors.py: MLS Grid's filterable fields and gzip, Bridge's
missing `in` and its two paging versions, Trestle's OAuth-only tokens, Spark's codes and
`$skiptoken`, ...), and the feed, configured by its vendor profile alone, must get through
the same six steps: the first load across pages, an idle cycle, changes across a page
boundary (one made while the client pages), a record that leaves the feed, an expired
credential, and the vendor's punishment.

A new vendor is a profile, a sandbox mode and one line in `MODES`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from factories import join
from mls_sync.domain.status import ConnectionState
from mls_sync.domain.status import ListingStatus as S
from mls_sync.mls.errors import MLS_CONNECTION_EXPIRED
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.reso_vendors import Fault
from mls_sync.services import feeds
from mls_sync.store.models import MlsFeed
from mls_sync.store.types import utcnow
from mls_sync.sync import runs

# Vendors are what varies here, not storage (the storage suites run every backend).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

TOKEN = "vendor-token"
CLIENT, SECRET = "our-app", "our-app-secret"
MEMBER, PASSWORD = "M12345", "member-password"
RECORDS = 7
NOT_FOUND = "Listing not found in MLS"


def _over_the_rate(reso: ResoSandbox) -> None:
    reso.rate_limit = 1  # MLS Grid: as if another client used the token too; then suspended


def _spark_1550(reso: ResoSandbox) -> None:
    body = {"error": {"code": "1550", "message": "Over rate limit"}}
    reso.fail_next.append(Fault(429, body))


def _quota_spent(reso: ResoSandbox) -> None:
    reso.hourly_quota = 1  # the hour's quota: one request, then `-Remaining: 0` until reset


def _retry_in_an_hour(reso: ResoSandbox) -> None:
    reso.fail_next.append(Fault(429, headers={"Retry-After": "3600"}))


@dataclass(frozen=True)
class Mode:
    name: str
    provider: str  # the vendor profile
    vendor: str = "generic"  # the sandbox's vendor mode
    path: str = ""  # where the sandbox serves the vendor's API
    auth: str = "bearer"  # bearer, oauth2 (client credentials) or oauth2_password
    overrides: dict[str, Any] = field(default_factory=dict)
    punish: Callable[[ResoSandbox], None] = _retry_in_an_hour


MODES = [
    Mode("generic", "generic"),
    Mode(
        "mlsgrid",
        "mlsgrid",
        "mlsgrid",
        overrides={"originating_system_name": "sandbox"},
        punish=_over_the_rate,
    ),
    Mode("bridge-v2", "bridge", "bridge", path="/api/v2/OData/ds", punish=_quota_spent),
    Mode("bridge-v3", "bridge", "bridge", path="/api/v3/OData/ds", punish=_quota_spent),
    Mode("trestle", "trestle", "trestle", auth="oauth2", punish=_quota_spent),
    Mode("spark", "spark", "spark", punish=_spark_1550),
    Mode("rapattoni", "rapattoni", auth="oauth2_password"),
]


@pytest.fixture(params=MODES, ids=[m.name for m in MODES])
def mode(request: pytest.FixtureRequest) -> Mode:
    mode: Mode = request.param
    return mode


@pytest.fixture
def mls(reso: ResoSandbox, mode: Mode) -> ResoSandbox:
    reso.vendor = mode.vendor
    reso.add_token(TOKEN)
    reso.oauth.add_client(CLIENT, SECRET)
    reso.oauth.add_member(MEMBER, PASSWORD)
    reso.max_page_size = 3
    for n in range(RECORDS):  # last changed a day ago: behind every replication window
        stamp = utcnow() - timedelta(days=1) + timedelta(minutes=n)
        reso.add_listing(f"K{n}", f"MLS-K{n}", "Active", modification_timestamp=stamp)
    return reso


def _credentials(mode: Mode, reso_url: str) -> feeds.MlsCredentials:
    if mode.auth == "bearer":
        return feeds.MlsCredentials(token=TOKEN)
    login = {"username": MEMBER, "password": PASSWORD} if mode.auth == "oauth2_password" else {}
    return feeds.MlsCredentials(
        auth_kind=mode.auth,
        client_id=CLIENT,
        client_secret=SECRET,
        token_url=f"{reso_url}/token",
        **login,
    )


async def _feed(runtime: Runtime, mode: Mode, reso_url: str) -> tuple[str, dict[str, str]]:
    """The operator's feed, as `feeds add` makes it: the profile decides key field, filter
    style, paging and budget. A member holds K1 and K2; returns the feed id and the member's
    listing ids by key."""
    settings = feeds.FeedSettings(
        base_url=reso_url + mode.path,
        credentials=_credentials(mode, reso_url),
        name=mode.name,
        provider=mode.provider,
        profile_overrides={**mode.overrides, "requests_per_second": 50},
    )
    async with runtime.db.transaction() as session:
        feed = await feeds.add_feed(session, runtime.cipher, settings, owner_user_id=None)
        feed_id = feed.id
    member = await join(runtime, feed_id, holding={"K1": S.ACTIVE, "K2": S.ACTIVE})
    return feed_id, {key: listing.id for key, listing in member.listings.items()}


async def _loaded(runtime: Runtime, mode: Mode, reso_url: str) -> tuple[str, dict[str, str]]:
    feed_id, held = await _feed(runtime, mode, reso_url)
    loaded = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")
    assert loaded.success, loaded.message
    return feed_id, held


async def _statuses(runtime: Runtime, held: dict[str, str]) -> dict[str, str]:
    async with runtime.db.transaction() as session:
        return {key: (await session.listings.lock(lid)).status for key, lid in held.items()}  # type: ignore[union-attr]


async def test_the_first_load_reads_every_record_across_pages(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, mode: Mode
) -> None:
    feed_id, _ = await _feed(runtime, mode, reso_url)

    loaded = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert loaded.success, loaded.message
    async with runtime.db.transaction() as session:
        assert await session.replica.count(feed_id) == RECORDS
        feed = await session.get(MlsFeed, feed_id)
    assert feed is not None and feed.loaded_at is not None
    assert len([r for r in mls.requests if r.path.endswith("/Property")]) >= 3  # pages


async def test_an_idle_cycle_costs_one_request_and_changes_nothing(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, mode: Mode
) -> None:
    feed_id, held = await _loaded(runtime, mode, reso_url)
    before = mls.request_count

    idle = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert idle.success, idle.message
    assert mls.request_count - before == 1
    assert idle.result.updated_listings == 0
    assert await _statuses(runtime, held) == {"K1": S.ACTIVE, "K2": S.ACTIVE}


async def test_changes_across_a_page_boundary_are_applied_once_even_one_made_while_paging(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, mode: Mode
) -> None:
    feed_id, held = await _loaded(runtime, mode, reso_url)
    mls.max_page_size = 2
    mls.set_status("K1", "Closed")  # sold: read on the increment's first page,
    mls.set_status("K0", "Pending")  # with this one,
    mls.set_status("K2", "Pending")  # and this one the first of the second page
    mls.set_status("K3", "Pending")
    pages = [0]

    def meanwhile() -> None:
        pages[0] += 1
        if pages[0] == 1:
            # A record of the first page changes again after it was cut: it moves behind, and
            # offsets would shift K2 onto the page already read (and skip it).
            mls.set_status("K0", "Closed")

    mls.on_page = meanwhile

    ran = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert ran.success, ran.message
    assert await _statuses(runtime, held) == {"K1": S.SOLD, "K2": S.PENDING}
    async with runtime.db.transaction() as session:
        rows = await session.replica.of_keys(feed_id, [f"K{n}" for n in range(RECORDS)])
        history = {k: await session.listings.history(lid) for k, lid in held.items()}
    assert {k: r.standard_status for k, r in rows.items()} == {
        s.listing_key: s.standard_status for s in mls.all_listings()
    }
    assert {k: len(h) for k, h in history.items()} == {"K1": 1, "K2": 1}  # once each
    mls.on_page = None
    again = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")
    assert again.success and again.result.updated_listings == 0


async def test_a_record_that_leaves_the_feed_is_found_by_the_reconciliation(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, mode: Mode
) -> None:
    feed_id, held = await _loaded(runtime, mode, reso_url)
    if mode.vendor == "mlsgrid":
        mls.hide("K2")  # MLS Grid keeps the record and says MlgCanView: false
    else:
        mls.remove_listing("K2")

    asked = await runtime.engine.sync_feed(feed_id, full=True)

    async with runtime.db.transaction() as session:
        (member,) = await session.connections.of_feed(feed_id)
        assert (await session.replica.of_keys(feed_id, ["K2"]))["K2"].gone
    errors = asked.outcome_for(member.id).result.errors
    assert [(e.listing_id, e.mls_number, e.error) for e in errors] == [
        (held["K2"], "MLS-K2", NOT_FOUND)
    ]


async def test_an_expired_credential_expires_the_feed_with_the_products_message(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, mode: Mode
) -> None:
    feed_id, _ = await _loaded(runtime, mode, reso_url)
    mls.revoke_token(TOKEN)  # the vendor revoked the key, or:
    mls.oauth.reject_client(CLIENT)  # our app's registration, or:
    mls.oauth.add_member(MEMBER, "changed-password")  # the member changed the password,
    mls.oauth.revoke_logins()  # which ends every refresh token,
    mls.oauth.expire_all()  # and every access token

    expired = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert not expired.success
    assert expired.message == MLS_CONNECTION_EXPIRED
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
    assert feed is not None and feed.state == ConnectionState.EXPIRED
    before = mls.request_count
    await runs.sync_feed(runtime.engine, feed_id, trigger="manual")
    assert mls.request_count == before  # not asked again until re-authenticated


async def test_the_vendors_punishment_rests_the_credential_without_a_request(
    runtime: Runtime, mls: ResoSandbox, reso_url: str, mode: Mode
) -> None:
    mls.max_page_size = 1  # a first load of several requests
    feed_id, _ = await _feed(runtime, mode, reso_url)
    mode.punish(mls)

    punished = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert not punished.success
    assert "suspended this credential" in punished.message
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
    assert feed is not None and feed.suspended_until is not None
    assert feed.suspended_until > utcnow() + timedelta(minutes=4)
    before = mls.request_count
    again = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")
    assert not again.success and "suspended this credential" in again.message
    assert mls.request_count == before  # nothing sent during the cool-down
