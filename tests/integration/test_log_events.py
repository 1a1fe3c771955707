"""The structured log of a run: one event when it starts, per status change, per unpublished
post and per error, each with the connection, listing and MLS number; the product spec's lines
appear as events. JSON in production, readable in a terminal."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from factories import seed_connection, seed_posts
from mls_sync.domain.status import ListingStatus as S
from mls_sync.observability import configure_logging
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox


def named(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event]


async def test_a_run_logs_its_start_changes_unpublished_posts_errors_and_summary(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded = await seed_connection(
        runtime, reso, reso_url, {"001": S.ACTIVE, "002": S.ACTIVE, "003": S.PENDING}
    )
    sold = seeded.listings["001"]
    await seed_posts(runtime, platforms, sold, ("facebook", "linkedin", "x"))
    reso.set_status("001", "Closed")
    reso.set_status("003", "Active")
    reso.remove_listing("002")
    cid = seeded.connection_id

    with capture_logs() as logs:
        await runtime.engine.sync_connection(cid)

    [start] = named(logs, "Syncing status for 3 listings...")
    [sold_line] = named(logs, "Listing MLS-001 marked as sold, unpublished 3 posts")
    [done] = named(logs, "Status sync complete: 2 updated, 3 posts unpublished, 1 restored")
    changes = named(logs, "status changed")
    unpublished = named(logs, "post unpublished")
    [error] = named(logs, "listing not synced")

    run_id = start["sync_run_id"]
    for event in (start, sold_line, done, *changes, error):
        assert (event["connection_id"], event["sync_run_id"]) == (cid, run_id)
    assert {(e["mls_number"], e["old_status"], e["new_status"]) for e in changes} == {
        ("MLS-001", "active", "sold"),
        ("MLS-003", "pending", "active"),
    }
    assert all(e["listing_id"] == seeded.listings[e["mls_number"][4:]].id for e in changes)
    assert sorted(e["platform"] for e in unpublished) == ["facebook", "linkedin", "x"]
    for event in unpublished:
        assert (event["connection_id"], event["listing_id"], event["mls_number"]) == (
            cid,
            sold.id,
            "MLS-001",
        )
    assert (sold_line["listing_id"], sold_line["mls_number"]) == (sold.id, "MLS-001")
    assert (error["listing_id"], error["mls_number"], error["error"]) == (
        seeded.listings["002"].id,
        "MLS-002",
        "Listing not found in MLS",
    )
    assert error["log_level"] == "warning"
    assert (done["errors"], done["success"]) == (1, True)


async def test_an_mls_failure_logs_one_error_per_listing_it_cost(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"A": S.ACTIVE, "B": S.ACTIVE})
    reso.fail_next.extend([500] * runtime.settings.mls_retry_attempts)

    with capture_logs() as logs:
        outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert not outcome.success
    errors = named(logs, "listing not synced")
    assert sorted(e["mls_number"] for e in errors) == ["MLS-A", "MLS-B"]
    for event in errors:
        assert event["connection_id"] == seeded.connection_id
        assert event["listing_id"] == seeded.listings[event["mls_number"][4:]].id
        assert "HTTP 500" in event["error"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("restore_logging")
def test_production_logs_are_json_lines_and_a_terminal_gets_readable_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(fmt="json")
    structlog.get_logger("t").info(
        "Syncing status for 25 listings...", connection_id="c1", sync_run_id="r1"
    )
    configure_logging(fmt="console")
    structlog.get_logger("t").info("Status sync complete: 2 updated", connection_id="c1")

    json_line, console_line = stream.getvalue().splitlines()
    parsed = json.loads(json_line)
    assert parsed["event"] == "Syncing status for 25 listings..."
    assert (parsed["level"], parsed["connection_id"], parsed["sync_run_id"]) == ("info", "c1", "r1")
    assert "timestamp" in parsed
    assert "Status sync complete: 2 updated" in console_line and "connection_id=c1" in console_line
