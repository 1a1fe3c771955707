"""The procrastinate executor end to end in one process: the API defers and answers with a
run id, a worker (run in-process until the queue is empty) syncs, and the run row carries the
progress and the final answer. PostgreSQL only: procrastinate keeps its jobs there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from api_support import CRON_SECRET, api_client, bearer, new_user
from factories import seed_connection
from mls_sync.cli import app as cli_app
from mls_sync.config import Settings
from mls_sync.domain.status import ListingStatus
from mls_sync.executors.procrastinate import ProcrastinateExecutor
from mls_sync.mls.shared_limits import SharedRateBudgets
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import TokenCipher
from mls_sync.worker.app import conninfo, procrastinate_cron, task_names
from mls_sync.worker.schema import install_schema
from worker_support import run_row, worker_settings

pytestmark = pytest.mark.postgres


@pytest.fixture
async def worker_runtime(postgres_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = worker_settings(postgres_url, tmp_path, TokenCipher.generate_key())
    await install_schema(settings)
    async with open_runtime(settings) as runtime:
        yield runtime


async def work_until_idle(runtime: Runtime) -> None:
    """A worker in this process until no job is waiting (fan-out jobs defer more jobs)."""
    assert isinstance(runtime.executor, ProcrastinateExecutor)
    app = runtime.executor.deferrer.app
    for _ in range(5):
        await app.run_worker_async(
            wait=False,
            install_signal_handlers=False,
            listen_notify=False,
            additional_context={"runtime": runtime},
        )
        waiting = await app.job_manager.list_jobs_async(status="todo")
        if not list(waiting):
            return
    raise AssertionError(f"jobs still waiting: {waiting}")


async def test_the_runtime_defers_through_procrastinate_with_a_shared_budget(
    worker_runtime: Runtime,
) -> None:
    assert isinstance(worker_runtime.executor, ProcrastinateExecutor)
    assert isinstance(worker_runtime.engine._clients._budgets, SharedRateBudgets)
    assert task_names(worker_runtime.executor.deferrer.app) == [
        "drain_unpublish",
        "retry_stalled_jobs",
        "schedule_syncs",
        "sync_connection",
        "sync_everyone",
        "sync_feed",
        "sync_listing",
        "sync_user",
    ]


async def test_a_connection_sync_answers_202_with_its_run_and_a_worker_fills_the_run(
    worker_runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id, key = await new_user(worker_runtime)
    seeded = await seed_connection(
        worker_runtime, reso, reso_url, {"A1": ListingStatus.ACTIVE}, user_id=user_id
    )
    reso.set_status("A1", "Closed")
    async with api_client(worker_runtime) as api:
        answer = await api.post(
            f"/api/mls-connections/{seeded.connection_id}/sync", headers=bearer(key)
        )
        assert answer.status_code == 202
        body = answer.json()
        run_id = body["data"]["runId"]
        assert body["success"] is True and body["data"]["state"] == "queued"
        assert run_id in body["message"]
        assert (await run_row(worker_runtime.db, run_id)).state == "queued"
        assert reso.request_count == 0  # nothing ran in the API process

        # Asked again while the first is still waiting: pointed at the same run, not queued twice.
        again = await api.post(
            f"/api/mls-connections/{seeded.connection_id}/sync", headers=bearer(key)
        )
        assert again.status_code == 202
        assert again.json()["data"]["runId"] == run_id
        assert "already queued" in again.json()["message"]

        await work_until_idle(worker_runtime)

        run = await run_row(worker_runtime.db, run_id)
        assert (run.state, run.success, run.trigger) == ("finished", True, "api")
        assert run.totals["updatedListings"] == 1
        listing = seeded.listings["A1"]
        async with worker_runtime.db.transaction() as session:
            stored = await repo.get_listing(session, listing.id)
        assert stored is not None and stored.status == ListingStatus.SOLD
        shown = await api.get(f"/api/sync-runs/{run_id}", headers=bearer(key))
        assert shown.status_code == 200
        assert shown.json()["state"] == "finished"


async def test_another_users_connection_is_not_found_and_nothing_is_queued(
    worker_runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    owner, _ = await new_user(worker_runtime, "owner@example.com")
    _, intruder_key = await new_user(worker_runtime, "intruder@example.com")
    seeded = await seed_connection(
        worker_runtime, reso, reso_url, {"B1": ListingStatus.ACTIVE}, user_id=owner
    )
    async with api_client(worker_runtime) as api:
        answer = await api.post(
            f"/api/mls-connections/{seeded.connection_id}/sync", headers=bearer(intruder_key)
        )
        listing = seeded.listings["B1"]
        listing_answer = await api.post(
            f"/api/listings/{listing.id}/sync", headers=bearer(intruder_key)
        )
    assert answer.status_code == 404 and listing_answer.status_code == 404
    async with worker_runtime.db.transaction() as session:
        assert await session.runs.newest(user_id=None) == []


async def test_a_users_sync_fans_out_per_connection_and_sums_up_like_the_inline_answer(
    worker_runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id, key = await new_user(worker_runtime)
    first = await seed_connection(
        worker_runtime, reso, reso_url, {"C1": ListingStatus.ACTIVE}, user_id=user_id
    )
    second = await seed_connection(
        worker_runtime,
        reso,
        reso_url,
        {"D1": ListingStatus.PENDING, "D2": ListingStatus.ACTIVE},
        user_id=user_id,
    )
    reso.set_status("C1", "Closed")
    reso.set_status("D1", "Active")
    async with api_client(worker_runtime) as api:
        answer = await api.post("/api/sync", headers=bearer(key))
    assert answer.status_code == 202
    run_id = answer.json()["data"]["runId"]

    await work_until_idle(worker_runtime)

    run = await run_row(worker_runtime.db, run_id)
    assert (run.state, run.scope, run.success) == ("finished", "user", True)
    assert run.progress == {"connectionsDone": 2, "connectionsTotal": 2}
    assert run.message is not None and run.message.startswith("Synced 2 of 2 MLS connections")
    totals = run.totals
    assert (totals["totalListings"], totals["updatedListings"], totals["restoredListings"]) == (
        3,
        2,
        1,
    )
    assert {c["connectionId"] for c in totals["connections"]} == {
        first.connection_id,
        second.connection_id,
    }
    assert sorted((c["mlsNumber"], c["newStatus"]) for c in run.status_changes) == [
        ("MLS-C1", "sold"),
        ("MLS-D1", "active"),
    ]


async def test_the_cron_endpoint_defers_everyone_and_a_listing_sync_defers_too(
    worker_runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id, key = await new_user(worker_runtime)
    seeded = await seed_connection(
        worker_runtime, reso, reso_url, {"E1": ListingStatus.ACTIVE}, user_id=user_id
    )
    reso.set_status("E1", "Pending")
    listing = seeded.listings["E1"]
    async with api_client(worker_runtime) as api:
        cron = await api.post("/api/cron/sync-mls-status", headers=bearer(CRON_SECRET))
        one = await api.post(f"/api/listings/{listing.id}/sync", headers=bearer(key))
    assert cron.status_code == 202 and one.status_code == 202
    cron_run_id = cron.json()["data"]["runId"]
    assert cron.json()["message"].endswith(f"GET /api/cron/sync-runs/{cron_run_id}")

    await work_until_idle(worker_runtime)

    everyone = await run_row(worker_runtime.db, cron.json()["data"]["runId"])
    assert (everyone.state, everyone.scope, everyone.trigger) == ("finished", "all", "cron")
    assert everyone.progress == {"connectionsDone": 1, "connectionsTotal": 1}
    single = await run_row(worker_runtime.db, one.json()["data"]["runId"])
    assert (single.state, single.scope, single.success) == ("finished", "listing", True)

    # The cron caller follows its run by the id it was given, under the cron secret; it
    # cannot read a user's runs, and a user's key cannot read the cron's.
    cron_run = f"/api/cron/sync-runs/{everyone.id}"
    async with api_client(worker_runtime) as api:
        shown = await api.get(cron_run, headers=bearer(CRON_SECRET))
        not_users = await api.get(f"/api/cron/sync-runs/{single.id}", headers=bearer(CRON_SECRET))
        by_key = await api.get(cron_run, headers=bearer(key))
        as_user = await api.get(f"/api/sync-runs/{everyone.id}", headers=bearer(key))
    assert shown.status_code == 200
    body = shown.json()
    assert (body["state"], body["scope"], body["trigger"]) == ("finished", "all", "cron")
    assert body["response"]["success"] is True
    assert body["response"]["data"]["totalListings"] == 1
    assert (not_users.status_code, by_key.status_code, as_user.status_code) == (404, 401, 404)


async def test_a_connection_removed_before_its_job_runs_finishes_its_run_as_not_found(
    worker_runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id, key = await new_user(worker_runtime)
    seeded = await seed_connection(
        worker_runtime, reso, reso_url, {"F1": ListingStatus.ACTIVE}, user_id=user_id
    )
    async with api_client(worker_runtime) as api:
        answer = await api.post("/api/sync", headers=bearer(key))
    run_id = answer.json()["data"]["runId"]
    async with worker_runtime.db.transaction() as session:
        await session.connections.delete(seeded.connection_id)

    await work_until_idle(worker_runtime)

    run = await run_row(worker_runtime.db, run_id)
    # The user had no connection left when the job listed them: an empty, successful run.
    assert (run.state, run.success) == ("finished", True)
    assert run.progress == {"connectionsDone": 0, "connectionsTotal": 0}


def test_db_upgrade_installs_procrastinates_schema_once(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.setenv("MLS_SYNC_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    first = runner.invoke(cli_app, ["db", "upgrade"])
    second = runner.invoke(cli_app, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert "procrastinate schema installed" in first.output
    assert "procrastinate schema installed" not in second.output


async def test_the_schema_check_sees_the_installed_tables(postgres_url: str) -> None:
    settings = Settings(database_url=postgres_url, token_keys=TokenCipher.generate_key())
    assert await install_schema(settings) is True
    conn = await asyncpg.connect(postgres_url.replace("postgresql://", "postgres://"))
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'procrastinate_%'"
        )
    finally:
        await conn.close()
    assert tables >= 3
    assert await install_schema(settings) is False


@pytest.mark.parametrize(
    ("ours", "croniters"),
    [
        ("*/15 * * * *", "*/15 * * * *"),
        ("*/30 * * * * *", "* * * * * */30"),  # our seconds field leads, croniter's trails
        ("0 9 * * mon-fri", "0 9 * * mon-fri"),
    ],
)
def test_schedules_are_handed_to_procrastinate_in_croniters_field_order(
    ours: str, croniters: str
) -> None:
    assert procrastinate_cron(ours) == croniters


def test_the_service_url_becomes_a_libpq_url() -> None:
    assert (
        conninfo("postgresql+asyncpg://app:s3cret@db.internal:5433/mls")
        == "postgresql://app:s3cret@db.internal:5433/mls"
    )


def test_the_worker_executor_refuses_sqlite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs DATABASE_URL on PostgreSQL"):
        Settings(data_dir=tmp_path, executor="procrastinate")
