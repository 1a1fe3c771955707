"""The structured log of a feed's run: one event when it starts, per status change, per
unpublished post and per error, each with the feed's run, and the connection, listing and MLS
number it concerns; the product spec's lines appear as events. A failure of the feed itself is
one event, not one per listing. JSON in production, readable in a terminal."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from factories import Seeded, seed_connection, seed_posts
from mls_sync.domain.status import ListingStatus as S
from mls_sync.observability import configure_logging
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo


def named(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == event]


async def a_run_with_changes_posts_and_an_error(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> tuple[Seeded, list[dict[str, Any]]]:
    """A connection's sync (its private feed's first load) that sells a listing with three
    posts, restores one and finds one gone from the MLS; with the run's log events."""
    seeded = await seed_connection(
        runtime, reso, reso_url, {"001": S.ACTIVE, "002": S.ACTIVE, "003": S.PENDING}
    )
    await seed_posts(runtime, platforms, seeded.listings["001"], ("facebook", "linkedin", "x"))
    reso.set_status("001", "Closed")
    reso.set_status("003", "Active")
    reso.remove_listing("002")

    with capture_logs() as logs:
        await runtime.engine.sync_connection(seeded.connection_id)
    return seeded, logs


async def feed_run_id(runtime: Runtime, seeded: Seeded) -> str:
    """The feed's run, that the connection's row (the only row in its user's history) points
    at; the feed's row is the operator's (no user)."""
    async with runtime.db.transaction() as session:
        [connection_run] = await session.runs.newest(user_id=seeded.user_id)
        assert connection_run.feed_run_id is not None
        feed_run = await repo.get_run(session, connection_run.feed_run_id, user_id=None)
    assert connection_run.scope == "connection"
    assert feed_run is not None
    assert (feed_run.scope, feed_run.scope_id, feed_run.user_id) == ("feed", seeded.feed_id, None)
    return feed_run.id


async def test_a_run_logs_the_product_spec_lines_at_its_start_and_end(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded, logs = await a_run_with_changes_posts_and_an_error(runtime, reso, reso_url, platforms)

    [start] = named(logs, "Syncing status for 3 listings...")
    [done] = named(logs, "Status sync complete: 2 updated, 3 posts unpublished, 1 restored")
    run_id = await feed_run_id(runtime, seeded)
    for event in (start, done):
        assert (event["feed_id"], event["sync_run_id"]) == (seeded.feed_id, run_id)
    assert (done["errors"], done["success"]) == (1, True)


async def test_a_run_logs_each_change_post_and_error_with_its_connection_and_listing(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded, logs = await a_run_with_changes_posts_and_an_error(runtime, reso, reso_url, platforms)
    sold = seeded.listings["001"]
    cid = seeded.connection_id

    [sold_line] = named(logs, "Listing MLS-001 marked as sold, unpublished 3 posts")
    [restored_line] = named(logs, "Listing MLS-003 restored to active")
    changes = named(logs, "status changed")
    unpublished = named(logs, "post unpublished")
    [error] = named(logs, "listing not synced")

    # The feed's run found them; each names the connection holding the listing (a shared
    # feed's change reaches several connections' listings), with the run's own fields.
    run_id = await feed_run_id(runtime, seeded)
    run = {"feed_id": seeded.feed_id, "sync_run_id": run_id, "trigger": "manual"}
    held = {"connection_id": cid, "log_level": "info"}
    to_sold = {
        **held,
        "listing_id": sold.id,
        "mls_number": "MLS-001",
        "old_status": "active",
        "new_status": "sold",
    }
    to_active = {
        **held,
        "listing_id": seeded.listings["003"].id,
        "mls_number": "MLS-003",
        "old_status": "pending",
        "new_status": "active",
    }
    assert sorted(changes, key=lambda e: e["mls_number"]) == [
        {**run, **to_sold, "event": "status changed", "unpublish_jobs": 3},
        {**run, **to_active, "event": "status changed", "unpublish_jobs": 0},
    ]
    assert restored_line == {**run, **to_active, "event": "Listing MLS-003 restored to active"}
    assert error == {
        **run,
        "event": "listing not synced",
        "connection_id": cid,
        "listing_id": seeded.listings["002"].id,
        "mls_number": "MLS-002",
        "error": "Listing not found in MLS",
        "log_level": "warning",
    }
    # The unpublisher's events name the post, its listing and the listing's connection.
    assert sorted(e["platform"] for e in unpublished) == ["facebook", "linkedin", "x"]
    for event in unpublished:
        assert (event["connection_id"], event["listing_id"], event["mls_number"]) == (
            cid,
            sold.id,
            "MLS-001",
        )
        assert (event["outcome"], event["log_level"]) == ("deleted", "info")
    # The product spec's line comes after the drain, with the count it delivered.
    assert sold_line == {
        **run,
        **held,
        "event": "Listing MLS-001 marked as sold, unpublished 3 posts",
        "listing_id": sold.id,
        "mls_number": "MLS-001",
    }


async def test_an_mls_failure_logs_one_warning_for_the_feed_not_one_per_listing(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    # The feed's replication failed, not a listing's lookup: no listing has an error of its
    # own, and the log says it once, however many listings the feed holds.
    seeded = await seed_connection(runtime, reso, reso_url, {"A": S.ACTIVE, "B": S.ACTIVE})
    reso.fail_next.extend([500] * runtime.settings.mls_retry_attempts)

    with capture_logs() as logs:
        outcome = await runtime.engine.sync_connection(seeded.connection_id)

    assert not outcome.success
    assert named(logs, "listing not synced") == []
    assert outcome.result.errors == []
    [stopped] = named(logs, "MLS replication stopped")
    assert (stopped["feed_id"], stopped["log_level"]) == (seeded.feed_id, "warning")
    assert "HTTP 500" in stopped["error"]
    assert outcome.message == f"MLS replication stopped: {stopped['error']}"


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
