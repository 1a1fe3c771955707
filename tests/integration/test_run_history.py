"""Run history: every run is stored with its trigger, scope, times, totals, errors and status
changes, and is listed (newest first, the caller's own) by `GET /api/sync-runs`, shown in
full by `GET /api/sync-runs/{id}`, and by `mls-sync runs`; on SQLite and PostgreSQL.

A feed's run row (scope "feed", totals over every member) is the operator's: it has no user,
even for a user's private feed. A user's history holds their connections' rows, each pointing
at its feed's run (`feed_run_id`, `feedRunId` on the wire), which the operator reads."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
from typer.testing import CliRunner, Result

from api_support import CRON_SECRET, MISSING_ID, api_client, bearer, new_user
from factories import seed_connection
from mls_sync.cli import app
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo


async def test_a_run_is_stored_with_its_status_changes_totals_and_errors(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(
        runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.ACTIVE, "K3": S.ACTIVE}
    )
    reso.set_status("K1", "Closed")
    reso.remove_listing("K3")

    outcome = await runtime.engine.sync_connection(seeded.connection_id, trigger="cli")

    async with runtime.db.transaction() as session:
        # Her history is the connection's part of the run; the feed's run it points at is the
        # operator's (no user), even for her private feed.
        [run] = await session.runs.newest(user_id=seeded.user_id)
        assert run.feed_run_id is not None
        feed_run = await repo.get_run(session, run.feed_run_id, user_id=None)
        hers = await repo.get_run(session, run.feed_run_id, user_id=seeded.user_id)
        operators = await session.runs.newest(user_id=None)
    assert feed_run is not None and hers is None
    assert [r.id for r in operators] == [run.id, feed_run.id]
    assert (run.trigger, run.scope, run.scope_id) == ("cli", "connection", seeded.connection_id)
    assert (feed_run.trigger, feed_run.scope, feed_run.scope_id) == ("cli", "feed", seeded.feed_id)
    assert (run.user_id, feed_run.user_id, feed_run.feed_run_id) == (seeded.user_id, None, None)
    for row in (run, feed_run):
        assert row.state == "finished"
        assert row.finished_at is not None and row.finished_at >= row.started_at
    assert (run.success, run.message) == (outcome.success, outcome.message)
    # The load read the MLS's two records (K3 is gone from it).
    assert (feed_run.success, feed_run.message) == (True, f"2 MLS records read: {outcome.message}")
    totals = {
        "totalListings": 3,
        "updatedListings": 1,
        "unpublishedPosts": 0,
        "restoredListings": 0,
    }
    assert run.totals == totals
    # The feed's totals are over every member, with each reported member's part.
    assert feed_run.totals == {
        **totals,
        "connections": [
            {
                **totals,
                "connectionId": seeded.connection_id,
                "success": True,
                "message": outcome.message,
                "skipped": False,
            }
        ],
    }
    for row in (run, feed_run):
        assert row.status_changes == [
            {
                "listingId": seeded.listings["K1"].id,
                "mlsNumber": "MLS-K1",
                "oldStatus": "active",
                "newStatus": "sold",
            }
        ]
        assert row.errors == [
            {
                "listingId": seeded.listings["K3"].id,
                "mlsNumber": "MLS-K3",
                "error": "Listing not found in MLS",
            }
        ]


async def test_runs_are_listed_newest_first_per_user_and_paged_by_start(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    alice = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE})
    bob_id, _ = await new_user(runtime, "bob@example.com")
    bob = await seed_connection(runtime, reso, reso_url, {"B1": S.ACTIVE}, user_id=bob_id)
    for _ in range(3):
        await runtime.engine.sync_connection(alice.connection_id)
    await runtime.engine.sync_connection(bob.connection_id)

    async with runtime.db.transaction() as session:
        alices = await session.runs.newest(user_id=alice.user_id)
        everyone = await session.runs.newest(user_id=None)
        pages = [await session.runs.newest(user_id=alice.user_id, limit=2)]
        pages.append(
            await session.runs.newest(
                user_id=alice.user_id, limit=2, before=pages[0][-1].started_at
            )
        )
        own = await repo.get_run(session, alices[0].id, user_id=alice.user_id)
        others = await repo.get_run(session, alices[0].id, user_id=bob_id)
        operator = await repo.get_run(session, alices[0].id, user_id=None)
        feed_run_id = alices[0].feed_run_id
        assert feed_run_id is not None
        feed_run_as_alice = await repo.get_run(session, feed_run_id, user_id=alice.user_id)
        feed_run = await repo.get_run(session, feed_run_id, user_id=None)

    # Three syncs, three rows: her connection's part of each of her private feed's runs.
    assert len(alices) == 3 and {r.user_id for r in alices} == {alice.user_id}
    assert [(r.scope, r.scope_id) for r in alices] == [("connection", alice.connection_id)] * 3
    assert [r.started_at for r in alices] == sorted((r.started_at for r in alices), reverse=True)
    # The operator sees every row: each sync's feed run (no user) and connection row.
    assert len(everyone) == 8 and everyone[0].user_id == bob_id  # bob's ran last
    feed_runs = [r for r in everyone if r.scope == "feed"]
    assert [(r.scope_id, r.user_id) for r in feed_runs] == [(bob.feed_id, None)] + [
        (alice.feed_id, None)
    ] * 3
    assert [r.feed_run_id for r in alices] == [r.id for r in feed_runs[1:]]
    assert [len(page) for page in pages] == [2, 1]
    assert [r.id for r in pages[0] + pages[1]] == [r.id for r in alices]
    assert own is not None and own.id == alices[0].id
    assert others is None  # another user's run looks missing
    assert operator is not None
    # Her feed's run is the operator's to read, not hers.
    assert feed_run_as_alice is None
    assert feed_run is not None and feed_run.scope_id == alice.feed_id


# the HTTP API


async def test_the_api_lists_only_the_callers_runs_page_by_page(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    alice_id, alice_key = await new_user(runtime, "alice@example.com")
    bob_id, bob_key = await new_user(runtime, "bob@example.com")
    alice = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE}, user_id=alice_id)
    bob = await seed_connection(runtime, reso, reso_url, {"B1": S.ACTIVE}, user_id=bob_id)
    for _ in range(3):
        await runtime.engine.sync_connection(alice.connection_id, trigger="api")
    await runtime.engine.sync_connection(bob.connection_id)

    async with api_client(runtime) as api:
        first = await api.get("/api/sync-runs?limit=2", headers=bearer(alice_key))
        cursor = first.json()["nextBefore"]
        second = await api.get(
            "/api/sync-runs", params={"limit": 2, "before": cursor}, headers=bearer(alice_key)
        )
        bobs = await api.get("/api/sync-runs", headers=bearer(bob_key))
        anonymous = await api.get("/api/sync-runs")
        feed_run_id = first.json()["runs"][0]["feedRunId"]
        feed_run_as_alice = await api.get(
            f"/api/sync-runs/{feed_run_id}", headers=bearer(alice_key)
        )
        feed_run = await api.get(f"/api/cron/sync-runs/{feed_run_id}", headers=bearer(CRON_SECRET))

    assert first.status_code == second.status_code == 200
    runs = first.json()["runs"] + second.json()["runs"]
    # Three syncs, three rows: her connection's part of each run of her private feed.
    assert [len(first.json()["runs"]), len(second.json()["runs"])] == [2, 1]
    assert second.json()["nextBefore"] is None
    assert len({r["id"] for r in runs}) == 3
    assert [(r["scope"], r["scopeId"]) for r in runs] == [("connection", alice.connection_id)] * 3
    # Each points at its own run of her feed.
    feed_run_ids = {r["feedRunId"] for r in runs}
    assert len(feed_run_ids) == 3 and None not in feed_run_ids
    assert runs[0] == {
        "id": runs[0]["id"],
        "trigger": "api",
        "scope": "connection",
        "scopeId": alice.connection_id,
        "state": "finished",
        "startedAt": runs[0]["startedAt"],
        "finishedAt": runs[0]["finishedAt"],
        "durationSeconds": runs[0]["durationSeconds"],
        "success": True,
        "message": "1 listings checked, 0 updated, 0 posts unpublished, 0 restored",
        "totals": {
            "totalListings": 1,
            "updatedListings": 0,
            "unpublishedPosts": 0,
            "restoredListings": 0,
        },
        "errorCount": 0,
        "statusChangeCount": 0,
        "progress": {},
        "feedRunId": feed_run_id,
    }
    assert runs[0]["durationSeconds"] >= 0
    # The feed's run her row points at is the operator's: she cannot read it, the cron secret
    # can. Its records read (both sandbox listings, within the clock-skew margin behind each
    # run's start), over every member's listings.
    assert (feed_run_as_alice.status_code, feed_run_as_alice.json()) == (
        404,
        {"detail": "Sync run not found"},
    )
    assert feed_run.status_code == 200
    shown = feed_run.json()
    assert (shown["id"], shown["scope"], shown["scopeId"], shown["feedRunId"]) == (
        feed_run_id,
        "feed",
        alice.feed_id,
        None,
    )
    assert (shown["trigger"], shown["success"], shown["message"]) == (
        "api",
        True,
        "2 MLS records read: 1 listings checked, 0 updated, 0 posts unpublished, 0 restored",
    )
    assert shown["totals"] == runs[0]["totals"]
    # Another user's rows never appear in hers, nor hers in his.
    assert [(r["scope"], r["scopeId"]) for r in bobs.json()["runs"]] == [
        ("connection", bob.connection_id)
    ]
    assert anonymous.status_code == 401


async def test_one_run_shows_its_final_response_in_the_spec_format(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    alice_id, alice_key = await new_user(runtime, "alice@example.com")
    _, bob_key = await new_user(runtime, "bob@example.com")
    seeded = await seed_connection(
        runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.PENDING}, user_id=alice_id
    )
    reso.set_status("K1", "Closed")
    reso.remove_listing("K2")
    outcome = await runtime.engine.sync_connection(seeded.connection_id)
    async with runtime.db.transaction() as session:
        [run] = await session.runs.newest(user_id=alice_id)  # the connection's row
    assert run.scope == "connection" and run.feed_run_id is not None

    async with api_client(runtime) as api:
        shown = await api.get(f"/api/sync-runs/{run.id}", headers=bearer(alice_key))
        as_bob = await api.get(f"/api/sync-runs/{run.id}", headers=bearer(bob_key))
        missing = await api.get(f"/api/sync-runs/{MISSING_ID}", headers=bearer(alice_key))
        malformed = await api.get("/api/sync-runs/not-an-id", headers=bearer(alice_key))
        # The feed's run her row points at is the operator's, not hers.
        feed_run = await api.get(f"/api/sync-runs/{run.feed_run_id}", headers=bearer(alice_key))

    assert shown.status_code == 200
    body = shown.json()
    assert body["state"] == "finished" and body["progress"] == {}
    assert body["errorCount"] == 1 and body["statusChangeCount"] == 1
    # The response the sync itself gave, exactly (the spec's {success, message, data}).
    assert body["response"] == {
        "success": True,
        "message": outcome.message,
        "data": outcome.result.to_wire(),
    }
    assert list(body["response"]["data"]) == [
        "totalListings",
        "updatedListings",
        "unpublishedPosts",
        "restoredListings",
        "errors",
        "statusChanges",
    ]
    assert body["statusChanges"] == body["response"]["data"]["statusChanges"]
    for refused in (as_bob, missing, malformed, feed_run):
        assert (refused.status_code, refused.json()) == (404, {"detail": "Sync run not found"})


async def test_a_running_run_has_no_response_yet(runtime: Runtime) -> None:
    user_id, key = await new_user(runtime)
    async with runtime.db.transaction() as session:
        run = await repo.start_run(
            session, trigger="cron", scope="connection", scope_id=None, user_id=user_id
        )
        run.progress = {"connectionsDone": 1, "connectionsTotal": 4}

    async with api_client(runtime) as api:
        body = (await api.get(f"/api/sync-runs/{run.id}", headers=bearer(key))).json()

    assert body["state"] == "running"
    assert body["progress"] == {"connectionsDone": 1, "connectionsTotal": 4}
    assert body["finishedAt"] is None and body["durationSeconds"] is None
    assert body["success"] is None and body["response"] is None


# the command line


@pytest.fixture
def cli(runtime: Runtime, database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """`mls-sync` on the test's database (settings from the environment, as a person runs it)."""
    monkeypatch.chdir(runtime.settings.data_dir)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(runtime.settings.data_dir))
    assert runtime.settings.token_keys is not None
    monkeypatch.setenv("MLS_SYNC_TOKEN_KEYS", runtime.settings.token_keys.get_secret_value())
    return CliRunner()


async def invoke(cli: CliRunner, *args: str) -> Result:
    # The CLI runs its own event loop (asyncio.run): give it a thread of its own.
    return await asyncio.to_thread(cli.invoke, app, list(args))


async def test_mls_sync_runs_lists_and_shows_runs(
    cli: CliRunner, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    other_id, _ = await new_user(runtime, "other@example.com")
    other = await seed_connection(runtime, reso, reso_url, {"O1": S.ACTIVE}, user_id=other_id)
    reso.set_status("K1", "Pending")
    await runtime.engine.sync_connection(seeded.connection_id, trigger="cli")
    await runtime.engine.sync_connection(other.connection_id, trigger="cron")

    table = await invoke(cli, "runs")
    listed = await invoke(cli, "runs", "--user", "agent@example.com", "--json")
    assert table.exit_code == 0 and listed.exit_code == 0, (table.output, listed.output)
    assert "Sync runs" in table.stdout and "cron" in table.stdout and "cli" in table.stdout
    # The user's runs are their connection's rows (the operator's table has the feeds' too).
    [run] = json.loads(listed.stdout)["runs"]
    assert (run["trigger"], run["scope"], run["scopeId"], run["totals"]["updatedListings"]) == (
        "cli",
        "connection",
        seeded.connection_id,
        1,
    )
    # The feed's run it points at, which the operator's `runs show` reads.
    shown_feed_run = await invoke(cli, "runs", "show", run["feedRunId"], "--json")
    assert shown_feed_run.exit_code == 0, shown_feed_run.output
    feed_run = json.loads(shown_feed_run.stdout)
    assert (feed_run["trigger"], feed_run["scope"], feed_run["scopeId"]) == (
        "cli",
        "feed",
        seeded.feed_id,
    )

    shown = await invoke(cli, "runs", "show", run["id"], "--json")
    table_of_one = await invoke(cli, "runs", "show", run["id"])
    missing = await invoke(cli, "runs", "show", MISSING_ID)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["response"]["data"]["statusChanges"] == [
        {
            "listingId": seeded.listings["K1"].id,
            "mlsNumber": "MLS-K1",
            "oldStatus": "active",
            "newStatus": "pending",
        }
    ]
    assert "MLS-K1" in table_of_one.stdout and "pending" in table_of_one.stdout
    assert missing.exit_code == 1 and "Sync run not found" in missing.stderr


async def test_mls_sync_runs_pages_with_before(
    cli: CliRunner, runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    # The operator's list (no --user), six rows: each sync's feed run and connection row.
    for _ in range(3):
        await runtime.engine.sync_connection(seeded.connection_id)

    first = json.loads((await invoke(cli, "runs", "-n", "4", "--json")).stdout)
    cursor = first["nextBefore"]
    # A person may type the instant without an offset: it is read as UTC.
    naive = datetime.fromisoformat(cursor).replace(tzinfo=None).isoformat()
    second = json.loads((await invoke(cli, "runs", "-n", "4", "--before", naive, "--json")).stdout)
    bad = await invoke(cli, "runs", "--before", "yesterday")

    assert len(first["runs"]) == 4 and len(second["runs"]) == 2
    assert second["nextBefore"] is None
    assert {r["id"] for r in first["runs"]}.isdisjoint(r["id"] for r in second["runs"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.stderr
