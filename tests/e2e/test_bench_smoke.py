"""The benchmark, run small (N = 100) so that it cannot rot: every case runs, each costs the
requests it should, and the JSON carries the documented fields. Nothing here is timed."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from mls_sync.bench import BenchOptions, run_benchmark, spec_seconds
from mls_sync.bench.report import run_json
from mls_sync.cli import app

FAST = {"latency_ms": 2.0, "rps": 100.0}
CASE_FIELDS = {
    "case",
    "label",
    "seconds",
    "cpuSeconds",
    "mlsRequests",
    "mlsRequestsMeasured",
    "platformRequests",
    "peakRssMb",
    "maxRequestsPerCredential",
    "floorSeconds",
    "vsFloor",
    "vsBaseline",
    "changesFound",
    "unpublishedPosts",
    "errors",
    "listingsMeasured",
    "extrapolated",
}
RUN_FIELDS = {
    "listings",
    "connections",
    "changed",
    "posts",
    "latencyMs",
    "rps",
    "baselineMax",
    "specSeconds",
    "peakRssPerCase",
    "seedSeconds",
    "cases",
}


async def test_every_case_costs_the_requests_its_strategy_needs(database_url: str) -> None:
    options = BenchOptions(
        listings=100,
        connections=3,
        changed=0.06,
        posts=1.0,  # every listing has a post, so every sold listing has one to take down
        baseline_max=40,
        database_url=database_url,
        **FAST,
    )

    report = await run_benchmark(options)

    assert [c.key for c in report.cases] == ["full", "idle", "changed", "baseline"]
    full, idle, changed, baseline = report.cases
    fleet = report.fleet
    assert fleet is not None
    held = [len(agent.listing_keys) for agent in fleet.agents]
    assert held == [34, 33, 33]
    # (a) the first sync checks every listing, 50 a request, on each credential
    assert full.mls_requests == sum(math.ceil(n / 50) for n in held) == 3
    assert (full.changes_found, full.platform_requests, full.errors) == (0, 0, 0)
    # (b) an idle incremental run costs exactly one MLS request per connection
    assert idle.mls_requests == options.connections
    assert idle.max_requests_per_credential == 1
    assert (idle.changes_found, idle.platform_requests, idle.errors) == (0, 0, 0)
    # (c) 6% changed: each change applied, one delete per post of a sold listing
    assert len(report.flipped) == 6
    assert changed.changes_found == 6
    sold_posts = fleet.sold_posts(report.flipped)
    assert sold_posts == 2  # Closed, pending, withdrawn in turn: two of the six sold
    assert changed.unpublished_posts == changed.platform_requests == sold_posts
    assert changed.mls_requests == options.connections  # six changes fit in one page
    assert changed.errors == 0
    # (d) the baseline asks once per listing, on a sample, and is scaled to all of them
    assert baseline.listings_measured == baseline.mls_requests_measured == 40
    assert baseline.mls_requests == 100
    assert baseline.extrapolated
    assert baseline.max_requests_per_credential == 34
    assert (baseline.changes_found, baseline.errors) == (0, 0)  # we are in step by then
    for case in report.cases:
        assert case.seconds > 0
        assert case.peak_rss_bytes > 0
        assert case.floor_seconds == case.max_requests_per_credential / options.rps
    for case in (full, idle, changed):
        assert case.vs_baseline == case.seconds / baseline.seconds


async def test_a_baseline_over_every_listing_is_measured_not_extrapolated(
    database_url: str,
) -> None:
    report = await run_benchmark(
        BenchOptions(
            listings=30, connections=2, baseline_max=200, database_url=database_url, **FAST
        )
    )

    baseline = report.case("baseline")
    assert not baseline.extrapolated
    assert baseline.mls_requests == baseline.mls_requests_measured == 30


def test_the_command_prints_the_documented_json() -> None:
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--listings",
            "100",
            "--connections",
            "2",
            "--latency-ms",
            "2",
            "--rps",
            "100",
            "--baseline-max",
            "20",
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    (run,) = json.loads(result.stdout)["runs"]
    assert set(run) == RUN_FIELDS
    assert (run["listings"], run["connections"], run["rps"]) == (100, 2, 100.0)
    assert run["specSeconds"] == 30.0
    assert [c["case"] for c in run["cases"]] == ["full", "idle", "changed", "baseline"]
    for case in run["cases"]:
        assert set(case) == CASE_FIELDS
    idle = run["cases"][1]
    assert idle["mlsRequests"] == 2
    baseline = run["cases"][3]
    assert (baseline["mlsRequestsMeasured"], baseline["extrapolated"]) == (20, True)
    assert baseline["vsBaseline"] is None


def test_the_command_prints_a_table_with_every_case() -> None:
    result = CliRunner().invoke(
        app, ["bench", "--listings", "20", "--latency-ms", "1", "--rps", "100"]
    )

    assert result.exit_code == 0, result.output
    for words in ("full check", "incremental, idle", "incremental, changed", "naive baseline"):
        assert words in result.stdout
    assert "The product spec expects about 6 s for 20 listings" in result.stdout


@pytest.mark.slow
def test_sizes_run_one_process_each_and_report_together() -> None:
    result = CliRunner().invoke(
        app, ["bench", "--sizes", "20x1,40x2", "--latency-ms", "1", "--rps", "100", "--json"]
    )

    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["listings"], r["connections"]) for r in runs] == [(20, 1), (40, 2)]
    assert [r["cases"][1]["mlsRequests"] for r in runs] == [1, 2]


def test_the_spec_figures_are_read_off_its_three_points() -> None:
    assert spec_seconds(100) == 30.0
    assert spec_seconds(500) == 120.0
    assert spec_seconds(1000) == 240.0
    assert spec_seconds(300) == 75.0
    assert spec_seconds(10_000) == 2400.0  # past its last point, at 0.24 s a listing


def test_report_json_rounds_but_keeps_every_case() -> None:
    from mls_sync.bench.runner import BenchReport, Case

    case = Case(
        key="idle",
        label="ours, incremental, idle",
        seconds=0.123456,
        cpu_seconds=0.1,
        mls_requests=2,
        mls_requests_measured=2,
        platform_requests=0,
        peak_rss_bytes=100 * 1024 * 1024,
        max_requests_per_credential=1,
        floor_seconds=0.5,
        changes_found=0,
    )
    run = run_json(BenchReport(BenchOptions(), cases=[case]))

    assert run["cases"][0]["seconds"] == 0.123
    assert run["cases"][0]["peakRssMb"] == 100.0
    assert run["cases"][0]["vsFloor"] == 0.247
