"""CloudWatch Embedded Metric Format lines: they follow the specification, carry exactly the
run's figures, and are printed once per run over every connection where they are enabled."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from factories import seed_connection, seed_posts
from mls_sync import actions
from mls_sync.config import Settings
from mls_sync.domain.results import (
    AggregatedResult,
    ConnectionSyncResult,
    StatusChange,
    SyncError,
)
from mls_sync.domain.status import ListingStatus as S
from mls_sync.observability.emf import EmfConfig, EmfWriter, emf_active, run_documents
from mls_sync.observability.reports import RunReport
from mls_sync.runtime import open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.database import Database

# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html
CLOUDWATCH_UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
    "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
}  # fmt: skip


def assert_emf(line: str) -> dict[str, Any]:
    """One log line that CloudWatch accepts as an EMF document (the specification's MUSTs)."""
    assert "\n" not in line.strip()
    document = json.loads(line)
    assert isinstance(document, dict)
    meta = document["_aws"]
    timestamp = meta["Timestamp"]
    assert isinstance(timestamp, int) and timestamp > 1_500_000_000_000  # milliseconds
    directives = meta["CloudWatchMetrics"]
    assert isinstance(directives, list) and directives
    for directive in directives:
        assert isinstance(directive["Namespace"], str) and 0 < len(directive["Namespace"]) <= 255
        for dimension_set in directive["Dimensions"]:
            assert 0 < len(dimension_set) <= 30
            for key in dimension_set:
                assert isinstance(document[key], str) and document[key]
        metrics = directive["Metrics"]
        assert 0 < len(metrics) <= 100
        assert len({m["Name"] for m in metrics}) == len(metrics)
        for metric in metrics:
            assert metric.get("Unit", "None") in CLOUDWATCH_UNITS
            value = document[metric["Name"]]
            assert isinstance(value, int | float) and not isinstance(value, bool)
            assert math.isfinite(value)
    return document


def aggregated() -> AggregatedResult:
    change = StatusChange(
        listing_id="L1", mls_number="MLS-1", old_status=S.ACTIVE, new_status=S.SOLD
    )
    error = SyncError(listing_id="L2", mls_number="MLS-2", error="Listing not found in MLS")
    one = ConnectionSyncResult(
        connection_id="c1",
        success=True,
        message="ok",
        total_listings=7,
        updated_listings=2,
        unpublished_posts=3,
        restored_listings=1,
        errors=[error],
        status_changes=[change],
    )
    two = ConnectionSyncResult(
        connection_id="c2", success=False, message="MLS connection expired. Please re-authenticate."
    )
    skipped = ConnectionSyncResult(connection_id="c3", success=False, message="busy", skipped=True)
    result = AggregatedResult(connections=[one, two, skipped], skipped_connections=1)
    result.add(one)
    result.add(two)
    return result


def report(result: AggregatedResult | None = None, *, success: bool = True) -> RunReport:
    started = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    return RunReport(
        trigger="eventbridge",
        success=success,
        message="Synced 1 of 2 MLS connections",
        result=result or aggregated(),
        started_at=started,
        finished_at=started + timedelta(seconds=42.5),
    )


def test_a_run_is_one_document_with_the_run_figures_under_the_configured_namespace() -> None:
    config = EmfConfig(namespace="Acme/Listings", dimensions={"Service": "sync", "Stage": "prod"})

    documents = run_documents(report(), config)

    assert len(documents) == 1
    doc = assert_emf(json.dumps(documents[0]))
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Acme/Listings"
    assert directive["Dimensions"] == [["Service", "Stage"]]
    assert (doc["Service"], doc["Stage"]) == ("sync", "prod")
    assert doc["_aws"]["Timestamp"] == int(
        datetime(2025, 5, 1, 12, 0, 42, 500000, UTC).timestamp() * 1000
    )
    figures = {m["Name"]: doc[m["Name"]] for m in directive["Metrics"]}
    assert figures == {
        "RunDuration": 42.5,
        "ListingsChecked": 7,
        "ListingsUpdated": 2,
        "PostsUnpublished": 3,
        "ListingsRestored": 1,
        "Errors": 1,
        "ConnectionsSynced": 1,
        "ConnectionsFailed": 1,
        "ConnectionsSkipped": 1,
        "RunFailed": 0,
    }
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["RunDuration"] == "Seconds" and units["ListingsChecked"] == "Count"
    # Context for Logs Insights, not metrics.
    assert (doc["trigger"], doc["success"]) == ("eventbridge", True)


def test_a_failed_run_counts_as_one_failed_run() -> None:
    doc = run_documents(report(success=False), EmfConfig(namespace="N"))[0]

    assert doc["RunFailed"] == 1


def test_per_connection_documents_carry_a_connection_dimension_and_skip_skipped_ones() -> None:
    config = EmfConfig(namespace="N", dimensions={"Service": "s"}, per_connection=True)

    run, *per_connection = run_documents(report(), config)

    assert [d["ConnectionId"] for d in per_connection] == ["c1", "c2"]
    for doc in per_connection:
        assert_emf(json.dumps(doc))
        assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "ConnectionId"]]
    first = per_connection[0]
    assert (first["ListingsChecked"], first["PostsUnpublished"], first["Errors"]) == (7, 3, 1)
    assert (first["success"], per_connection[1]["success"]) == (True, False)
    assert "ConnectionId" not in run


@pytest.mark.parametrize("name", ["ListingsChecked", "trigger", "ConnectionId", "_aws"])
def test_a_dimension_may_not_take_a_metric_or_context_name(name: str) -> None:
    with pytest.raises(ValueError, match="MLS_SYNC_EMF_DIMENSIONS"):
        EmfConfig(namespace="N", dimensions={name: "x"})


def test_namespace_and_dimensions_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLS_SYNC_EMF_NAMESPACE", "Team/MlsSync")
    monkeypatch.setenv("MLS_SYNC_EMF_DIMENSIONS", '{"Service": "mls-sync", "Stage": "prod"}')

    config = EmfConfig.from_settings(Settings())

    assert config.namespace == "Team/MlsSync"
    assert dict(config.dimensions) == {"Service": "mls-sync", "Stage": "prod"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MLS_SYNC_EMF_NAMESPACE", "AWS/Lambda"),
        ("MLS_SYNC_EMF_NAMESPACE", "bad\nname"),
        ("MLS_SYNC_EMF_DIMENSIONS", "{}"),
        ("MLS_SYNC_EMF_DIMENSIONS", '{"Service": ""}'),
    ],
)
def test_broken_emf_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValueError, match="emf_"):
        Settings()


@pytest.mark.parametrize(
    ("enabled", "lambda_name", "active"),
    [(None, "mls-sync", True), (None, None, False), (True, None, True), (False, "mls-sync", False)],
)
def test_emf_is_on_on_lambda_unless_a_setting_says_otherwise(
    enabled: bool | None, lambda_name: str | None, active: bool
) -> None:
    environ = {"AWS_LAMBDA_FUNCTION_NAME": lambda_name} if lambda_name else {}

    assert emf_active(Settings(emf_enabled=enabled), environ) is active


# the lines a real run prints


async def test_a_run_over_every_connection_prints_one_emf_line_with_its_response_figures(
    settings: Settings,
    db: Database,
    reso: ResoSandbox,
    reso_url: str,
    platforms: PlatformSandbox,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with open_runtime(settings.model_copy(update={"emf_enabled": True}), db=db) as runtime:
        seeded = await seed_connection(
            runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.PENDING, "K3": S.ACTIVE}
        )
        await seed_posts(runtime, platforms, seeded.listings["K1"], ("facebook", "x"))
        reso.set_status("K1", "Closed")
        reso.set_status("K2", "Active")
        reso.remove_listing("K3")
        capsys.readouterr()

        response = await actions.sync_all_users(engine=runtime.engine, trigger="schedule")

    lines = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(lines) == 1
    doc = assert_emf(lines[0])
    data = response.data
    assert data is not None
    assert (
        (doc["ListingsChecked"], doc["ListingsUpdated"])
        == (3, 2)
        == (
            data.total_listings,
            data.updated_listings,
        )
    )
    assert (doc["PostsUnpublished"], doc["ListingsRestored"], doc["Errors"]) == (2, 1, 1)
    assert (doc["ConnectionsSynced"], doc["ConnectionsFailed"], doc["RunFailed"]) == (1, 0, 0)
    assert doc["RunDuration"] >= 0
    assert (doc["trigger"], doc["message"]) == ("schedule", response.message)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MlsStatusSync"


async def test_no_emf_line_off_lambda_by_default(
    settings: Settings,
    db: Database,
    reso: ResoSandbox,
    reso_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    async with open_runtime(settings, db=db) as runtime:
        await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
        capsys.readouterr()

        await actions.sync_all_users(engine=runtime.engine, trigger="cli")

    assert '"_aws"' not in capsys.readouterr().out


async def test_a_failing_metrics_sink_never_fails_the_run(
    settings: Settings, db: Database, reso: ResoSandbox, reso_url: str
) -> None:
    def broken(_: RunReport) -> None:
        raise RuntimeError("sink down")

    seen: list[RunReport] = []
    async with open_runtime(settings, db=db) as runtime:
        await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
        runtime.engine.run_observers.extend([broken, seen.append])

        response = await actions.sync_all_users(engine=runtime.engine, trigger="cli")

    assert response.success
    assert [r.result.total_listings for r in seen] == [1]


def test_the_writer_prints_one_line_per_document() -> None:
    class Sink:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

        def flush(self) -> None:
            pass

    sink = Sink()
    writer = EmfWriter(EmfConfig(namespace="N", per_connection=True), stream=sink)  # type: ignore[arg-type]

    writer(report())

    lines = sink.text.splitlines()
    assert len(lines) == 3  # the run, c1, c2
    for line in lines:
        assert_emf(line)
