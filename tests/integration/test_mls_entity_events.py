"""EntityEvent replication (RESO RCP-027): a feed whose profile says
`replication="entity_event"` reads the MLS's event log after its last sequence and fetches every
Property an event names (the feed's replica keeps every record, held or not), applying it to
whoever holds it; against the sandbox MLS over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from factories import seed_connection
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import RecordedRequest, ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.models import MlsFeed


async def entity_event_connection(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    keys: list[str],
    **overrides: Any,
) -> str:
    """A connection holding `keys` (active) in its private feed, replicating by events, after
    its first sync (the feed's load, which records where the log stands first)."""
    reso.entity_events = True
    seeded = await seed_connection(runtime, reso, reso_url, dict.fromkeys(keys, S.ACTIVE))
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, seeded.feed_id)
        assert feed is not None
        feed.profile_overrides = {"replication": "entity_event", **overrides}
    first = await runtime.engine.sync_connection(seeded.connection_id)
    assert first.success
    return seeded.connection_id


async def feed_of(runtime: Runtime, connection_id: str) -> MlsFeed:
    async with runtime.db.transaction() as session:
        connection = await repo.get_mls_connection(session, connection_id)
        assert connection is not None
        return await repo.feed_of(session, connection)


async def stored_sequence(runtime: Runtime, connection_id: str) -> int | None:
    return (await feed_of(runtime, connection_id)).entity_event_sequence


async def statuses(runtime: Runtime, connection_id: str) -> dict[str, str]:
    async with runtime.db.transaction() as session:
        return {
            listing.listing_key: listing.status
            for listing in await session.listings.of_connection(connection_id)
        }


async def history_counts(runtime: Runtime, connection_id: str) -> dict[str, int]:
    async with runtime.db.transaction() as session:
        return {
            listing.listing_key: len(await session.listings.history(listing.id))
            for listing in await session.listings.of_connection(connection_id)
        }


def requests_since(reso: ResoSandbox, before: int) -> list[RecordedRequest]:
    return reso.requests[before:]


def last_sequence(reso: ResoSandbox) -> int:
    return reso.entity_event_log()[-1]["EntityEventSequence"]


async def test_the_first_sync_records_where_the_log_stands_then_loads_the_feed(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await entity_event_connection(runtime, reso, reso_url, ["K1", "K2"])

    assert await stored_sequence(runtime, connection_id) == 2  # one event per listing added
    position, load = reso.requests  # the log's position, then every record
    assert (position.path, position.params) == (
        "/EntityEvent",
        {"$orderby": "EntityEventSequence desc", "$top": "1"},
    )
    assert load.path == "/Property"
    assert load.params["$filter"] == "ModificationTimestamp ge 1970-01-01T00:00:00.000Z"
    assert (await feed_of(runtime, connection_id)).loaded_at is not None


async def test_a_status_change_is_applied_from_its_event(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await entity_event_connection(runtime, reso, reso_url, ["K1", "K2"])
    reso.set_status("K2", "Closed")
    before = reso.request_count

    outcome = await runtime.engine.sync_connection(connection_id)

    events, fetch = requests_since(reso, before)
    assert events.path == "/EntityEvent"
    assert events.params["$filter"] == "EntityEventSequence gt 2"
    assert events.params["$orderby"] == "EntityEventSequence asc"
    assert fetch.path == "/Property('K2')"
    assert outcome.success
    assert [(c.mls_number, c.new_status) for c in outcome.result.status_changes] == [
        ("MLS-K2", S.SOLD)
    ]
    assert await statuses(runtime, connection_id) == {"K1": S.ACTIVE, "K2": S.SOLD}
    assert await stored_sequence(runtime, connection_id) == 3


async def test_a_record_the_mls_answers_404_for_is_not_found_and_left_unchanged(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await entity_event_connection(runtime, reso, reso_url, ["K1", "K2"])
    reso.remove_listing("K1")

    outcome = await runtime.engine.sync_connection(connection_id)

    assert [(e.mls_number, e.error) for e in outcome.result.errors] == [
        ("MLS-K1", "Listing not found in MLS")
    ]
    assert outcome.result.updated_listings == 0
    assert (await statuses(runtime, connection_id))["K1"] == S.ACTIVE
    assert await stored_sequence(runtime, connection_id) == last_sequence(reso)


async def test_a_record_nobody_holds_goes_into_the_replica_and_other_resources_are_ignored(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await entity_event_connection(runtime, reso, reso_url, ["K1"])
    reso.add_listing("NOT-OURS", "MLS-X", "Closed")
    reso.log_event("M-7", resource_name="Member")  # another resource's event
    reso.log_event("K1", resource_name="Media")  # same key, but not a Property event
    before = reso.request_count

    outcome = await runtime.engine.sync_connection(connection_id)

    # The Property event is fetched (the replica keeps every record); the others are not.
    assert [r.path for r in requests_since(reso, before)] == [
        "/EntityEvent",
        "/Property('NOT-OURS')",
    ]
    assert outcome.success
    assert outcome.result.updated_listings == 0
    assert outcome.result.errors == []
    feed = await feed_of(runtime, connection_id)
    async with runtime.db.transaction() as session:
        rows = await session.replica.of_keys(feed.id, ["NOT-OURS", "M-7"])
    assert {key: row.standard_status for key, row in rows.items()} == {"NOT-OURS": "Closed"}
    # The reader still moves past every event: none is read again.
    assert await stored_sequence(runtime, connection_id) == last_sequence(reso)


async def test_an_idle_feed_costs_exactly_one_request(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await entity_event_connection(runtime, reso, reso_url, ["K1", "K2"])
    before = reso.request_count

    outcome = await runtime.engine.sync_connection(connection_id)

    assert outcome.success
    assert reso.request_count - before == 1
    assert await stored_sequence(runtime, connection_id) == 2


async def test_events_across_several_pages_are_each_applied_once(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    keys = [f"K{n:02d}" for n in range(12)]
    connection_id = await entity_event_connection(runtime, reso, reso_url, keys)
    reso.max_page_size = 5
    for key in keys:
        reso.set_status(key, "Pending")
    reso.set_status("K00", "Closed")  # a later event for a key already changed on page one
    before = reso.request_count

    outcome = await runtime.engine.sync_connection(connection_id)

    event_pages = [r for r in requests_since(reso, before) if r.path == "/EntityEvent"]
    assert len(event_pages) == 3  # 13 events, 5 a page, following @odata.nextLink
    assert outcome.success
    assert (await statuses(runtime, connection_id))["K00"] == S.SOLD
    assert {k: v for k, v in (await statuses(runtime, connection_id)).items() if k != "K00"} == (
        dict.fromkeys(keys[1:], S.PENDING)
    )
    assert await stored_sequence(runtime, connection_id) == last_sequence(reso)

    again = await runtime.engine.sync_connection(connection_id)

    assert again.result.updated_listings == 0


async def test_a_crash_between_fetching_and_committing_does_not_advance_the_sequence(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"K{n:02d}" for n in range(12)]
    connection_id = await entity_event_connection(runtime, reso, reso_url, keys)
    start = await stored_sequence(runtime, connection_id)
    assert start is not None
    reso.max_page_size = 5
    for key in keys:
        reso.set_status(key, "Closed")
    real_save = repo.save_entity_event_sequence
    pages_committed = 0

    async def crash_on_second_page(*args: Any, **kwargs: Any) -> None:
        nonlocal pages_committed
        if pages_committed == 1:
            raise RuntimeError("worker killed")
        pages_committed += 1
        await real_save(*args, **kwargs)

    monkeypatch.setattr(repo, "save_entity_event_sequence", crash_on_second_page)
    with pytest.raises(RuntimeError, match="worker killed"):
        await runtime.engine.sync_connection(connection_id)

    # Page one (5 events) is committed with its sequence; page two rolled back with its own.
    assert await stored_sequence(runtime, connection_id) == start + 5
    now = await statuses(runtime, connection_id)
    assert [k for k in keys if now[k] == S.SOLD] == keys[:5]

    monkeypatch.setattr(repo, "save_entity_event_sequence", real_save)
    resumed = await runtime.engine.sync_connection(connection_id)

    assert resumed.result.updated_listings == 7  # the rest, and none of the first 5 again
    assert set((await statuses(runtime, connection_id)).values()) == {S.SOLD}
    assert set((await history_counts(runtime, connection_id)).values()) == {1}
    assert await stored_sequence(runtime, connection_id) == start + 12


async def test_a_failed_event_request_leaves_the_sequence_where_it_was(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await entity_event_connection(runtime, reso, reso_url, ["K1"])
    reso.set_status("K1", "Closed")
    reso.fail_next.extend([500, 500, 500])

    failed = await runtime.engine.sync_connection(connection_id)

    assert not failed.success
    assert failed.message.startswith("MLS replication stopped: MLS error: HTTP 500")
    assert await stored_sequence(runtime, connection_id) == 1
    retried = await runtime.engine.sync_connection(connection_id)
    assert retried.result.updated_listings == 1


async def test_batch_lookup_asks_for_the_changed_keys_in_one_request(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await entity_event_connection(
        runtime,
        reso,
        reso_url,
        ["K1", "K2", "K3"],
        entity_event_lookup="batch",
        entity_event_resource_filter=True,
    )
    reso.set_status("K1", "Pending")
    reso.remove_listing("K3")
    before = reso.request_count

    outcome = await runtime.engine.sync_connection(connection_id)

    events, fetch = requests_since(reso, before)
    assert events.params["$filter"] == "EntityEventSequence gt 3 and ResourceName eq 'Property'"
    assert fetch.path == "/Property"
    assert fetch.params["$filter"] == "ListingKey in ('K1','K3')"
    assert [(c.mls_number, c.new_status) for c in outcome.result.status_changes] == [
        ("MLS-K1", S.PENDING)
    ]
    assert [(e.mls_number, e.error) for e in outcome.result.errors] == [
        ("MLS-K3", "Listing not found in MLS")
    ]


async def test_a_reconciliation_still_runs_when_due(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    connection_id = await entity_event_connection(runtime, reso, reso_url, ["K1", "K2"])
    feed_id = (await feed_of(runtime, connection_id)).id
    async with runtime.db.transaction() as session:
        feed = await session.get(MlsFeed, feed_id)
        assert feed is not None
        feed.reconciled_at = datetime.now(UTC) - timedelta(hours=25)
    reso.log_event("X1", resource_name="Member")  # the log moved on meanwhile
    before = reso.request_count

    outcome = await runtime.engine.sync_connection(connection_id)

    # The events after the sequence, then the key-only pull (nothing to refetch).
    events, pull = requests_since(reso, before)
    assert (events.path, pull.path) == ("/EntityEvent", "/Property")
    assert pull.params == {"$select": "ListingKey,ListingId,ModificationTimestamp"}
    assert outcome.success and outcome.result.errors == []
    assert await stored_sequence(runtime, connection_id) == last_sequence(reso)
    reconciled = (await feed_of(runtime, connection_id)).reconciled_at
    assert reconciled is not None and reconciled > datetime.now(UTC) - timedelta(hours=1)


async def test_sandbox_serves_the_log_with_paging_and_single_entities_by_key(
    reso: ResoSandbox, reso_url: str
) -> None:
    reso.entity_events = True
    reso.max_page_size = 2
    reso.add_listing("O'Hara/1", "MLS-1", "Active")
    reso.add_listing("K2", "MLS-2", "Active")
    reso.set_status("K2", "Closed")
    auth = {"Authorization": "Bearer mls-token"}
    async with httpx.AsyncClient(base_url=reso_url, headers=auth) as http:
        first = (
            await http.get("/EntityEvent", params={"$filter": "EntityEventSequence ge 1"})
        ).json()
        second = (await http.get(first["@odata.nextLink"])).json()
        entity = await http.get("/Property('O''Hara%2F1')", params={"$select": "ListingKey"})
        missing = await http.get("/Property('GONE')")

    assert [e["EntityEventSequence"] for e in first["value"] + second["value"]] == [1, 2, 3]
    assert second["value"][0] == {
        "EntityEventSequence": 3,
        "ResourceName": "Property",
        "ResourceRecordKey": "K2",
    }
    assert "@odata.nextLink" not in second
    assert entity.json()["ListingKey"] == "O'Hara/1"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NotFound"
