"""Paging that never skips: the MLS does not stand still while a client pages. A record read
on the first page changes (its timestamp moves to now) before the second page is asked for.
Offset paging (`$skip`, what most servers' next links are) then finds every unread record one
place earlier and skips one across the page boundary (RESOStandards/reso-tools #254,
tylercollier/openresync #6); keyset paging by (ModificationTimestamp, ListingKey) asks for what
comes after the last record seen, so nothing is skipped and the changed record is read again
with its new timestamp. Restarting each page from the newest timestamp read (`ge`, dropping
what was read at that instant: for servers with only next links) does the same. A feed
replicated either way applies each change once."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from factories import join, seed_shared_feed
from mls_sync.domain.status import ListingStatus as S
from mls_sync.mls.auth import StaticBearer
from mls_sync.mls.client import ResoClient
from mls_sync.mls.profiles import PROFILES
from mls_sync.mls.transport import MlsTransport
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sync import runs

RECORDS = 10
PAGE = 3
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def _market(reso: ResoSandbox) -> None:
    reso.max_page_size = PAGE
    for n in range(RECORDS):
        reso.add_listing(
            f"K{n}", f"MLS-{n}", "Active", modification_timestamp=LONG_AGO + timedelta(minutes=n)
        )


def _change_the_first_record_once(reso: ResoSandbox) -> None:
    pages = [0]

    def after_page() -> None:
        pages[0] += 1
        if pages[0] == 1:
            reso.set_status("K0", "Pending")  # read on page 1; now the newest record

    reso.on_page = after_page


def _client(http: httpx.AsyncClient, url: str, paging: str) -> ResoClient:
    profile = dataclasses.replace(PROFILES["generic"], paging=paging, page_size=PAGE)
    transport = MlsTransport(http, StaticBearer("mls-token"), profile=profile)
    return ResoClient(http, base_url=url, transport=transport, profile=profile)


@pytest.mark.parametrize(
    ("paging", "skipped"), [("keyset", set()), ("restart", set()), ("next_link", {"K3"})]
)
async def test_records_changing_between_pages_are_skipped_by_offsets_never_by_keyset_or_restart(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str, paging: str, skipped: set[str]
) -> None:
    _market(reso)
    _change_the_first_record_once(reso)

    seen = [
        r async for page in _client(http, reso_url, paging).fetch_changes_since(None) for r in page
    ]

    keys = [r.listing_key for r in seen]
    assert {f"K{n}" for n in range(RECORDS)} - set(keys) == skipped
    if paging in ("keyset", "restart"):
        # K0 twice: as it was, then as it changed (the newest record, read at the end).
        assert keys.count("K0") == 2 and keys[-1] == "K0"
        assert [r.standard_status for r in seen if r.listing_key == "K0"][-1] == "Pending"
        assert len(keys) == RECORDS + 1


async def test_a_page_filled_by_one_instant_follows_the_servers_link_and_skips_nothing(
    http: httpx.AsyncClient, reso: ResoSandbox, reso_url: str
) -> None:
    reso.max_page_size = PAGE
    for n in range(RECORDS):  # the first seven share one instant: more than two pages of it
        stamp = LONG_AGO + timedelta(minutes=max(n - 6, 0))
        reso.add_listing(f"K{n}", f"MLS-{n}", "Active", modification_timestamp=stamp)

    seen = [
        r
        async for page in _client(http, reso_url, "restart").fetch_changes_since(None)
        for r in page
    ]

    keys = [r.listing_key for r in seen]
    assert sorted(keys) == sorted(f"K{n}" for n in range(RECORDS))  # each once


@pytest.mark.parametrize("paging", ["keyset", "restart"])
async def test_a_feed_loads_every_record_and_applies_a_change_made_meanwhile_once(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, paging: str
) -> None:
    _market(reso)
    feed_id = await seed_shared_feed(
        runtime,
        reso_url,
        token="mls-token",
        profile_overrides={"paging": paging, "page_size": PAGE},
    )
    held = (await join(runtime, feed_id, holding={"K0": S.ACTIVE})).listings["K0"]
    # While the first load pages, K0 (read on its first page) sells.
    pages = [0]

    def after_page() -> None:
        pages[0] += 1
        if pages[0] == 1:
            reso.set_status("K0", "Closed")

    reso.on_page = after_page

    ran = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")

    assert ran.success
    async with runtime.db.transaction() as session:
        assert await session.replica.count(feed_id) == RECORDS  # nothing skipped
        history = await session.listings.history(held.id)
        listing = await session.listings.lock(held.id)
    assert listing is not None and listing.status == "sold"
    assert [h.new_status for h in history].count("sold") == 1  # applied once
    again = await runs.sync_feed(runtime.engine, feed_id, trigger="manual")
    assert again.success and again.result.updated_listings == 0
