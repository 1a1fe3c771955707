"""Alerts after each run: a failed run, an error rate over the threshold (10%) and a run over
the time limit (300 s) fire to the log and, when configured, to a webhook as a JSON POST with
a Slack-compatible `text`. End to end: the sandbox MLS is told to fail over its control API,
and the alert reaches a real local webhook server and the log; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from structlog.testing import capture_logs

from factories import seed_connection
from mls_sync.config import Settings
from mls_sync.domain.results import SyncError, SyncResult
from mls_sync.domain.status import ListingStatus as S
from mls_sync.observability.alerts import (
    ERROR_RATE_HIGH,
    RUN_FAILED,
    RUN_SLOW,
    FinishedRun,
    Thresholds,
    evaluate,
)
from mls_sync.observability.metrics import METRICS
from mls_sync.runtime import Runtime, open_runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.sandbox.standalone import MLS_TOKEN, Sandbox, build_sandbox
from mls_sync.store import repositories as repo
from mls_sync.store.database import Database
from mls_sync.sync.runs import sync_everyone

START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def finished(
    *, success: bool = True, listings: int = 10, errors: int = 0, seconds: float = 1.0
) -> FinishedRun:
    result = SyncResult(
        total_listings=listings,
        errors=[
            SyncError(listing_id=f"L{i}", mls_number=f"M{i}", error="x") for i in range(errors)
        ],
    )
    return FinishedRun(
        run_id="run-1",
        connection_id="conn-1",
        connection_name="Sandbox MLS",
        user_id="user-1",
        trigger="schedule",
        scope="connection",
        success=success,
        message="ok" if success else "MLS connection expired. Please re-authenticate.",
        started_at=START,
        finished_at=START + timedelta(seconds=seconds),
        result=result,
    )


# the rules (pure)


@pytest.mark.parametrize(
    ("run", "fired"),
    [
        (finished(), []),
        (finished(success=False), [RUN_FAILED]),
        (finished(errors=1), []),  # 10% is not over 10%
        (finished(errors=2), [ERROR_RATE_HIGH]),
        (finished(listings=0), []),  # nothing checked, no rate
        (finished(seconds=300), []),
        (finished(seconds=300.5), [RUN_SLOW]),
        (finished(errors=10, seconds=900), [ERROR_RATE_HIGH, RUN_SLOW]),
        # the failure is the news; its listings' errors are not alerted twice
        (finished(success=False, errors=10, seconds=900), [RUN_FAILED, RUN_SLOW]),
    ],
)
def test_rules_fire_on_a_failed_run_an_error_rate_over_and_a_run_over_the_limit(
    run: FinishedRun, fired: list[str]
) -> None:
    assert [a.rule for a in evaluate(run, Thresholds())] == fired


def test_thresholds_come_from_settings_with_the_documented_defaults() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (defaults.alert_error_rate, defaults.alert_run_seconds) == (0.10, 300.0)
    assert Thresholds() == Thresholds(defaults.alert_error_rate, defaults.alert_run_seconds)
    strict = Thresholds(error_rate=0.05, run_seconds=60)
    assert [a.rule for a in evaluate(finished(errors=1, seconds=61), strict)] == [
        ERROR_RATE_HIGH,
        RUN_SLOW,
    ]


def test_the_webhook_payload_is_slack_text_plus_the_run() -> None:
    [alert] = evaluate(finished(errors=3), Thresholds())
    payload = alert.payload()
    assert payload["text"] == (
        "*MlsSyncErrorRateHigh* (warning) MLS connection Sandbox MLS: "
        "3 errors in 10 listings (30%, over 10%) [run run-1]"
    )
    assert payload | {"text": ""} == {
        "text": "",
        "alert": ERROR_RATE_HIGH,
        "severity": "warning",
        "summary": "3 errors in 10 listings (30%, over 10%)",
        "value": 0.3,
        "threshold": 0.1,
        "runId": "run-1",
        "connectionId": "conn-1",
        "userId": "user-1",
        "trigger": "schedule",
        "scope": "connection",
        "success": True,
        "message": "ok",
        "startedAt": "2026-11-29T09:00:00+00:00",
        "finishedAt": "2026-11-29T09:00:01+00:00",
        "durationSeconds": 1.0,
        "totalListings": 10,
        "errors": 3,
    }


# end to end: the sandbox MLS fails, the alert reaches a webhook and the log


@dataclass
class Webhook:
    """A real local HTTP server standing in for Slack: keeps what was POSTed."""

    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def endpoint(self, request: Request) -> Response:
        self.received.append(await request.json())
        return JSONResponse({"ok": self.status < 400}, status_code=self.status)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    app = Starlette(routes=[Route("/hooks/alerts", hook.endpoint, methods=["POST"])])
    with BackgroundServer(app) as server:
        hook.url = f"{server.url}/hooks/alerts"
        yield hook


@pytest.fixture
def sandbox() -> Iterator[tuple[Sandbox, str]]:
    """`mls-sync sandbox`'s app, with its /_sandbox/ control API, on a loopback port."""
    built = build_sandbox(listings=0)
    with BackgroundServer(built.app) as server:
        yield built, server.url


@pytest.fixture
async def alerting(settings: Settings, db: Database, webhook: Webhook) -> AsyncIterator[Runtime]:
    """The runtime as `serve` builds it, with the webhook configured."""
    configured = settings.model_copy(update={"alert_webhook_url": SecretStr(webhook.url)})
    async with open_runtime(configured, db=db) as runtime:
        yield runtime


def alert_events(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in logs if "alert" in event and event["event"].startswith("Alert ")]


async def test_a_failing_mls_raises_one_alert_for_the_feed_to_the_webhook_and_the_log(
    alerting: Runtime, sandbox: tuple[Sandbox, str], webhook: Webhook
) -> None:
    built, mls_url = sandbox
    seeded = await seed_connection(
        alerting, built.reso, mls_url, {"K1": S.ACTIVE, "K2": S.ACTIVE}, token=MLS_TOKEN
    )
    fired_before = METRICS.value("mls_sync_alerts_fired_total", {"rule": RUN_FAILED})
    async with httpx.AsyncClient() as http:
        told = await http.post(f"{mls_url}/_sandbox/fail", json={"status": 500, "count": 3})
    assert told.json() == {"queued": 3}

    with capture_logs() as logs:
        outcome = await alerting.engine.sync_connection(seeded.connection_id, trigger="schedule")

    assert not outcome.success and "HTTP 500" in outcome.message
    async with alerting.db.transaction() as session:
        # The connection asked, so it has its row (the only one in its user's history); the
        # failure is the feed's, on the feed's run, which is the operator's (no user).
        [run] = await session.runs.newest(user_id=seeded.user_id)
        assert run.feed_run_id is not None
        feed_run = await repo.get_run(session, run.feed_run_id, user_id=None)
    assert feed_run is not None
    assert (run.scope, feed_run.scope, feed_run.scope_id) == ("connection", "feed", seeded.feed_id)
    assert feed_run.user_id is None
    assert (run.success, feed_run.success, run.message) == (False, False, outcome.message)
    [posted] = webhook.received
    assert posted["alert"] == RUN_FAILED and posted["severity"] == "critical"
    # A private feed without a name is named by its URL.
    assert posted["text"].startswith(f"*MlsSyncRunFailed* (critical) MLS feed {mls_url}: ")
    assert outcome.message in posted["text"]
    assert (posted["runId"], posted["connectionId"], posted["userId"], posted["scope"]) == (
        feed_run.id,
        seeded.feed_id,
        seeded.user_id,  # the private feed's owner, although its run row has no user
        "feed",
    )
    assert (posted["success"], posted["trigger"]) == (False, "schedule")
    # The feed failed: one alert says so, not one per member, nor an error rate too.
    events = alert_events(logs)
    assert [e["alert"] for e in events] == [RUN_FAILED]
    assert events[0]["log_level"] == "error"
    assert (events[0]["connection_id"], events[0]["scope"]) == (seeded.feed_id, "feed")
    assert events[0]["sync_run_id"] == feed_run.id
    assert [p["alert"] for p in webhook.received] == [RUN_FAILED]
    assert METRICS.value("mls_sync_alerts_fired_total", {"rule": RUN_FAILED}) == fired_before + 1


async def test_an_error_rate_over_the_threshold_alerts_although_the_run_succeeded(
    alerting: Runtime, sandbox: tuple[Sandbox, str], webhook: Webhook
) -> None:
    built, mls_url = sandbox
    seeded = await seed_connection(
        alerting, built.reso, mls_url, {"K1": S.ACTIVE, "K2": S.ACTIVE}, token=MLS_TOKEN
    )
    built.reso.remove_listing("K2")  # 1 error in 2 listings: 50%

    outcome = await alerting.engine.sync_connection(seeded.connection_id)

    assert outcome.success
    assert [p["alert"] for p in webhook.received] == [ERROR_RATE_HIGH]
    assert webhook.received[0]["text"].endswith(
        f"1 errors in 2 listings (50%, over 10%) [run {webhook.received[0]['runId']}]"
    )

    webhook.received.clear()
    built.reso.add_listing("K2", "MLS-K2", "Active")
    assert (await alerting.engine.sync_connection(seeded.connection_id)).success
    assert webhook.received == []  # a healthy run stays quiet


async def test_a_webhook_that_fails_is_logged_and_never_fails_the_run(
    alerting: Runtime, sandbox: tuple[Sandbox, str], webhook: Webhook
) -> None:
    built, mls_url = sandbox
    seeded = await seed_connection(alerting, built.reso, mls_url, {"K1": S.ACTIVE}, token=MLS_TOKEN)
    built.reso.remove_listing("K1")
    webhook.status = 500

    with capture_logs() as logs:
        outcome = await alerting.engine.sync_connection(seeded.connection_id)

    assert outcome.success  # the sync's own result is untouched
    assert len(webhook.received) == 1
    [failure] = [e for e in logs if e["event"] == "alert webhook failed"]
    assert (failure["alert"], failure["status"]) == (ERROR_RATE_HIGH, 500)
    assert webhook.url not in str(logs)  # a Slack URL is a secret


async def test_a_run_over_the_time_limit_alerts_in_the_log_without_a_webhook(
    settings: Settings, db: Database, reso: ResoSandbox, reso_url: str
) -> None:
    quick = settings.model_copy(update={"alert_run_seconds": 1e-6})
    async with open_runtime(quick, db=db) as runtime:
        seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
        with capture_logs() as logs:
            assert (await runtime.engine.sync_connection(seeded.connection_id)).success

    [slow] = alert_events(logs)
    assert (slow["alert"], slow["log_level"]) == (RUN_SLOW, "warning")
    assert slow["connection_id"] == seeded.connection_id


async def test_a_whole_cron_run_over_the_time_limit_alerts_once_for_the_run(
    settings: Settings, db: Database, reso: ResoSandbox, reso_url: str
) -> None:
    # The 5-minute budget is the whole job's: a run over every feed can be slow while each
    # connection was quick, so the run over all of them is judged too (only by its length:
    # its connections' failures and error rates alerted one by one). A cron run reports a
    # member only when something happened to its listings; an idle member has no run row and
    # no alert of its own.
    quick = settings.model_copy(update={"alert_run_seconds": 1e-6})
    async with open_runtime(quick, db=db) as runtime:
        changed = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
        await seed_connection(runtime, reso, reso_url, {"K2": S.ACTIVE}, user_id=changed.user_id)
        reso.set_status("K1", "Pending")
        with capture_logs() as logs:
            outcome, _ = await sync_everyone(runtime.engine, trigger="cron")
            assert outcome.success

    events = alert_events(logs)
    assert sorted((e["scope"], e["connection_id"]) for e in events) == [
        ("all", ""),
        ("connection", changed.connection_id),
    ]
    [whole] = [event for event in events if event["scope"] == "all"]
    assert (whole["alert"], whole["trigger"]) == (RUN_SLOW, "cron")


async def test_the_sandbox_control_api_refuses_nonsense_and_clears_failures(
    sandbox: tuple[Sandbox, str],
) -> None:
    built, mls_url = sandbox
    async with httpx.AsyncClient(base_url=mls_url) as http:
        assert (await http.post("/_sandbox/fail", json={"status": 200})).status_code == 422
        assert (await http.post("/_sandbox/fail", json={"count": 0})).status_code == 422
        assert (await http.post("/_sandbox/fail", json={"status": 401})).json() == {"queued": 3}
        assert built.reso.fail_next == [401, 401, 401]
        assert (await http.delete("/_sandbox/fail")).json() == {"queued": 0}
    assert built.reso.fail_next == []
