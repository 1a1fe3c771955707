"""The benchmarks, run small so that they cannot rot: every case runs, each costs the requests
it should, and the JSON carries the documented fields. Nothing here is timed.

The per-agent benchmark (`mls-sync bench`): N listings over C connections, each with its own
credential, so its own feed. The feeds benchmark (`mls-sync bench feeds`): one MLS Grid market
replicated once as a shared feed, beside the per-agent model, private feeds and the spec's
one-request-per-listing strategy."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import pytest
from typer.testing import CliRunner

from mls_sync.bench import BenchOptions, FeedBenchOptions, run_benchmark, spec_seconds
from mls_sync.bench.feeds import CYCLES_A_DAY, FeedCase, request_kind, run_feed_benchmark
from mls_sync.bench.report import feed_run_json, run_json
from mls_sync.bench.takedown import Takedown
from mls_sync.cli import app
from mls_sync.sandbox.reso import RecordedRequest

FAST: dict[str, Any] = {"latency_ms": 2.0, "rps": 100.0}
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


async def test_every_per_agent_case_costs_the_requests_its_strategy_needs(
    database_url: str,
) -> None:
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

    assert [c.key for c in report.cases] == ["load", "idle", "changed", "baseline"]
    load, idle, changed, baseline = report.cases
    fleet = report.fleet
    assert fleet is not None
    held = [len(agent.listing_keys) for agent in fleet.agents]
    assert held == [34, 33, 33]
    # (a) each connection's first sync loads its feed: every record the MLS has (all 100, not
    # only its own third), in the sandbox's pages of 200, on its own credential
    assert load.mls_requests == options.connections * math.ceil(100 / 200) == 3
    assert load.max_requests_per_credential == 1
    assert (load.changes_found, load.platform_requests, load.errors) == (0, 0, 0)
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
    # each connection's replication returns all six changes (one page) and keeps its own
    assert changed.mls_requests == options.connections
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
    for case in (load, idle, changed):
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
    assert [c["case"] for c in run["cases"]] == ["load", "idle", "changed", "baseline"]
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
    for words in ("first load", "incremental, idle", "incremental, changed", "naive baseline"):
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


# the feeds benchmark

FEED_CASES = [
    "load",
    "idle",
    "agents-load",
    "agents-idle",
    "private-load",
    "private-idle",
    "changed",
    "agents-changed",
    "reconcile",
    "takedown",
    "naive",
]
FEED_CASE_FIELDS = {
    "case",
    "label",
    "model",
    "seconds",
    "cpuSeconds",
    "mlsRequests",
    "mlsRequestsMeasured",
    "keyOnlyRequests",
    "lookupRequests",
    "platformRequests",
    "peakRssMb",
    "maxRequestsPerCredential",
    "floorSeconds",
    "vsFloor",
    "requestsPerDay",
    "shareOfDailyCap",
    "changesFound",
    "changesExpected",
    "unpublishedPosts",
    "postsExpected",
    "errors",
    "failure",
    "measured",
    "extrapolated",
    "cycles",
    "latencyP50",
    "latencyP99",
    "latencyMax",
    "takedowns",
}
FEED_RUN_FIELDS = {
    "records",
    "agents",
    "held",
    "posts",
    "changed",
    "latencyMs",
    "rps",
    "pageSize",
    "privateAgents",
    "perAgentSample",
    "sales",
    "saleMinutes",
    "cadenceSeconds",
    "baselineMax",
    "dailyCap",
    "peakRssPerCase",
    "seedSeconds",
    "recordsLoaded",
    "changedRecords",
    "heldChanges",
    "requestsPerDay",
    "cases",
}
SMALL_FEEDS: dict[str, Any] = {"latency_ms": 2.0, "rps": 200.0}


async def test_a_shared_feed_costs_one_request_a_cycle_whatever_the_number_of_agents(
    database_url: str,
) -> None:
    """2,000 records in pages of 500, 20 agents holding 20 each (every held listing with a
    post, so every sold one has a post to take down), 1% of the market changed."""
    options = FeedBenchOptions(
        records=2000,
        agents=20,
        held=20,
        posts=1.0,
        changed=0.01,
        page_size=500,
        private_agents=5,
        per_agent_sample=2,
        sales=20,
        sale_minutes=10.0,
        cadence_seconds=60.0,
        baseline_max=20,
        database_url=database_url,
        **SMALL_FEEDS,
    )

    report = await run_feed_benchmark(options)

    assert [c.key for c in report.cases] == FEED_CASES
    case = report.case
    market = report.market
    assert market is not None
    assert market.held_count == 400
    for each in report.cases:
        assert (each.errors, each.failure) == (0, None), each.key
        assert each.floor_seconds == each.max_requests_per_credential / options.rps
    # every first load finished in one cycle
    assert [case(k).cycles for k in ("load", "agents-load", "private-load")] == [1, 1, 1]
    # the shared feed's first load: every record, in pages of 500, on the vendor token; each
    # page after the first asks again from the newest timestamp read (paging that never
    # skips), which it answers first: 500 new records, then 499 a page
    load = case("load")
    assert load.mls_requests == 1 + math.ceil((2000 - 500) / 499) == 5
    assert (load.key_only_requests, load.lookup_requests, load.platform_requests) == (0, 0, 0)
    assert report.records_loaded == 2000
    assert load.changes_found == 0  # held listings agree with the replica
    assert load.requests_per_day is None  # once
    # an idle cycle of the shared feed: one request in all, for its 20 members
    idle = case("idle")
    assert idle.mls_requests == idle.max_requests_per_credential == 1
    assert idle.requests_per_day == CYCLES_A_DAY == 96
    # the per-agent model: two agents measured, each loading the whole market on the one
    # token, scaled to 20; idle, one request per agent
    agents_load, agents_idle = case("agents-load"), case("agents-idle")
    assert agents_load.mls_requests_measured == 2 * 5  # each loads it as the feed did
    assert agents_load.mls_requests == agents_load.max_requests_per_credential == 20 * 5
    assert agents_idle.mls_requests_measured == 2
    assert agents_idle.mls_requests == agents_idle.max_requests_per_credential == 20
    assert agents_idle.requests_per_day == 20 * 96
    for scaled in (agents_load, agents_idle, case("agents-changed")):
        assert (scaled.measured, scaled.extrapolated) == (2, True)
    # private feeds: one credential each; their 100 records fit in one page
    private_load, private_idle = case("private-load"), case("private-idle")
    assert private_load.mls_requests == private_idle.mls_requests == 5
    assert private_idle.max_requests_per_credential == 1
    assert private_idle.requests_per_day == 96
    # 1% of the market changed: one page; every held change applied, each sold listing's
    # post deleted on its platform
    assert len(report.changes) == 20
    held = {k: s for k, s in report.changes.items() if k in market.held}
    sold = sum(1 for status in held.values() if status == "Closed")
    assert sold > 0
    changed = case("changed")
    assert changed.mls_requests == 1
    assert changed.changes_found == changed.changes_expected == len(held)
    assert changed.unpublished_posts == changed.posts_expected == sold
    assert changed.platform_requests == sold
    agents_changed = case("agents-changed")
    solo_held = {k for a in market.solo for k in a.listing_keys if k in report.changes}
    assert agents_changed.mls_requests_measured == 2
    assert agents_changed.changes_found == agents_changed.changes_expected == len(solo_held)
    # the daily reconciliation: the run's replication step, then a key-only pull of the feed
    # in pages of 500; no request about any one listing
    reconcile = case("reconcile")
    assert reconcile.key_only_requests == 4
    assert reconcile.lookup_requests == 0
    assert reconcile.mls_requests == 4 + 1
    assert reconcile.changes_found == 0
    # takedowns at a one-minute cadence: 20 sales over 10 simulated minutes, ten cycles of
    # one request each, one delete per sold post
    down = case("takedown")
    assert (down.cycles, down.mls_requests, down.max_requests_per_credential) == (10, 10, 10)
    assert down.requests_per_day == 1440
    assert down.changes_found == down.unpublished_posts == down.platform_requests == 20
    assert down.takedowns == 20
    takedown = report.takedown
    assert takedown is not None
    assert takedown.missing == 0
    # each post came down in the first cycle after its sale: within a cadence and that
    # cycle's own time
    assert min(takedown.latencies) >= 0
    assert max(takedown.latencies) <= options.cadence_seconds + max(takedown.cycle_seconds)
    assert down.latency_p50 == takedown.quantile(0.5)
    assert down.latency_p99 == takedown.quantile(0.99)
    # the spec's strategy: one lookup per held listing on the one token, on a sample
    naive = case("naive")
    assert naive.mls_requests_measured == naive.lookup_requests == 20
    assert naive.mls_requests == naive.max_requests_per_credential == 400
    assert (naive.measured, naive.extrapolated) == (20, True)
    assert naive.changes_found == 0  # we are in step with the MLS by then
    # a day on the vendor token: 96 idle cycles plus a reconciliation (per feed)
    assert report.day() == {"feed": 96 + 5, "perAgent": 20 * 96 + 20 * 5}

    run = feed_run_json(report)
    assert set(run) == FEED_RUN_FIELDS
    for each in run["cases"]:
        assert set(each) == FEED_CASE_FIELDS
    assert (run["recordsLoaded"], run["changedRecords"], run["heldChanges"]) == (
        2000,
        20,
        len(held),
    )


def test_the_feeds_command_prints_the_documented_json() -> None:
    result = CliRunner().invoke(app, [*_small_feeds_command(), "--json"])

    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["feeds"]
    assert set(run) == FEED_RUN_FIELDS
    assert (run["records"], run["agents"], run["pageSize"], run["changed"]) == (
        1000,
        10,
        250,
        0.01,
    )
    assert [c["case"] for c in run["cases"]] == FEED_CASES
    cases = {c["case"]: c for c in run["cases"]}
    for case in cases.values():
        assert set(case) == FEED_CASE_FIELDS
    assert cases["load"]["mlsRequests"] == 5  # 500 records, then 499 new a page
    assert cases["idle"]["mlsRequests"] == 1
    assert cases["private-idle"]["mlsRequests"] == 3
    assert cases["reconcile"]["keyOnlyRequests"] == 4
    assert cases["idle"]["shareOfDailyCap"] == round(96 / 40_000, 4)


def test_the_feeds_command_prints_a_table_with_every_case() -> None:
    result = CliRunner().invoke(app, _small_feeds_command())

    assert result.exit_code == 0, result.output
    for words in (
        "first load",
        "idle cycle",
        "1% changed",
        "daily reconciliation",
        "takedown, 1 min cadence",
        "1 request a listing",
        "First load: 1,000 of 1,000 records in the replica",
        "Takedown, 60 s cadence: 10 sales over 10 simulated minutes, 10 cycles",
        "A day on the vendor token, 15-minute cadence",
    ):
        assert words in result.stdout


def test_an_unknown_benchmark_is_refused() -> None:
    result = CliRunner().invoke(app, ["bench", "fleet"])

    assert result.exit_code == 2
    assert "the only benchmark named is feeds" in result.output


def test_takedown_quantiles_are_nearest_rank() -> None:
    measured = Takedown(latencies=[float(n) for n in range(200, 0, -1)], cycles=10, missing=0)

    assert measured.quantile(0.5) == 100.0
    assert measured.quantile(0.99) == 198.0
    assert measured.quantile(1.0) == 200.0
    assert Takedown(latencies=[], cycles=0, missing=0).quantile(0.5) is None


def test_requests_are_told_apart_by_what_they_ask() -> None:
    def request(path: str, **params: str) -> RecordedRequest:
        return RecordedRequest("GET", path, params, {}, "t")

    system = "OriginatingSystemName eq 'benchmls'"
    replication = request(
        "/Property",
        **{"$filter": f"{system} and ModificationTimestamp ge 2026-01-01T00:00:00.000Z"},
        **{"$select": "ListingKey,ListingId,StandardStatus,ModificationTimestamp"},
    )
    keys = request("/Property", **{"$select": "ListingKey,ListingId,ModificationTimestamp"})
    batch = request("/Property", **{"$filter": f"{system} and ListingId in ('ML1','ML2')"})
    one = request("/Property('MK1')")

    assert [request_kind(r) for r in (replication, keys, batch, one)] == [
        "replication",
        "keys",
        "lookup",
        "lookup",
    ]


def test_requests_a_day_follow_the_case_cadence() -> None:
    idle = FeedCase(
        key="idle",
        label="idle cycle",
        model="feed",
        seconds=0.5,
        cpu_seconds=0.01,
        mls_requests=1,
        mls_requests_measured=1,
        key_only_requests=0,
        lookup_requests=0,
        platform_requests=0,
        peak_rss_bytes=0,
        max_requests_per_credential=1,
        floor_seconds=0.5,
        cycles_a_day=96,
        changes_found=0,
    )

    assert idle.requests_per_day == 96
    assert (
        replace(
            idle, cycles=10, max_requests_per_credential=10, cycles_a_day=1440.0
        ).requests_per_day
        == 1440
    )
    assert replace(idle, cycles_a_day=None).requests_per_day is None


def _small_feeds_command() -> list[str]:
    return [
        "bench",
        "feeds",
        *("--records", "1000", "--agents", "10", "--held", "10", "--page-size", "250"),
        *("--private-agents", "3", "--per-agent-sample", "2", "--sales", "10"),
        *("--baseline-max", "10", "--latency-ms", "2", "--rps", "200"),
    ]
