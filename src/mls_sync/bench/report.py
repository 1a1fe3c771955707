"""The benchmark's figures as JSON (camelCase, like every other JSON the project prints).

One run (one size) is an object; `mls-sync bench --json` prints `{"runs": [...]}` and
`mls-sync bench feeds --json` prints `{"feeds": {...}}`. The tables the command prints are made
from these same objects, so the two never disagree.
"""

from __future__ import annotations

from typing import Any

from mls_sync.bench.feeds import DAILY_CAP, FeedCase, FeedReport
from mls_sync.bench.runner import BenchReport, Case

MB = 1024 * 1024


def run_json(report: BenchReport) -> dict[str, Any]:
    o = report.options
    return {
        "listings": o.listings,
        "connections": o.connections,
        "changed": o.changed,
        "posts": o.posts,
        "latencyMs": o.latency_ms,
        "rps": o.rps,
        "baselineMax": o.baseline_max,
        "specSeconds": round(report.spec_seconds, 1),
        "peakRssPerCase": report.peak_rss_per_case,
        "seedSeconds": round(report.seed_seconds, 3),
        "cases": [case_json(case) for case in report.cases],
    }


def case_json(case: Case) -> dict[str, Any]:
    return {
        "case": case.key,
        "label": case.label,
        "seconds": round(case.seconds, 3),
        "cpuSeconds": round(case.cpu_seconds, 3),
        "mlsRequests": case.mls_requests,
        "mlsRequestsMeasured": case.mls_requests_measured,
        "platformRequests": case.platform_requests,
        "peakRssMb": round(case.peak_rss_bytes / MB, 1),
        "maxRequestsPerCredential": case.max_requests_per_credential,
        "floorSeconds": round(case.floor_seconds, 3),
        "vsFloor": _ratio(case.vs_floor),
        "vsBaseline": _ratio(case.vs_baseline),
        "changesFound": case.changes_found,
        "unpublishedPosts": case.unpublished_posts,
        "errors": case.errors,
        "listingsMeasured": case.listings_measured,
        "extrapolated": case.extrapolated,
    }


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def feed_run_json(report: FeedReport) -> dict[str, Any]:
    """The feeds benchmark's run (`mls-sync bench feeds --json` prints `{"feeds": ...}`)."""
    o = report.options
    market = report.market
    held = 0 if market is None else len(market.held_changes(report.changes, market.members))
    takedown_cadence = report.day(o.cadence_seconds)["feed"]
    return {
        "records": o.records,
        "agents": o.agents,
        "held": o.held,
        "posts": o.posts,
        "changed": o.changed,
        "latencyMs": o.latency_ms,
        "rps": o.rps,
        "pageSize": o.page_size,
        "privateAgents": o.private_agents,
        "perAgentSample": o.per_agent_sample,
        "sales": o.sales,
        "saleMinutes": o.sale_minutes,
        "cadenceSeconds": o.cadence_seconds,
        "baselineMax": o.baseline_max,
        "dailyCap": DAILY_CAP,
        "peakRssPerCase": report.peak_rss_per_case,
        "seedSeconds": round(report.seed_seconds, 3),
        "recordsLoaded": report.records_loaded,
        "changedRecords": len(report.changes),
        "heldChanges": held,
        "requestsPerDay": {**report.day(), "feedAtTakedownCadence": takedown_cadence},
        "cases": [feed_case_json(case) for case in report.cases],
    }


def feed_case_json(case: FeedCase) -> dict[str, Any]:
    per_day = case.requests_per_day
    return {
        "case": case.key,
        "label": case.label,
        "model": case.model,
        "seconds": round(case.seconds, 3),
        "cpuSeconds": round(case.cpu_seconds, 3),
        "mlsRequests": case.mls_requests,
        "mlsRequestsMeasured": case.mls_requests_measured,
        "keyOnlyRequests": case.key_only_requests,
        "lookupRequests": case.lookup_requests,
        "platformRequests": case.platform_requests,
        "peakRssMb": round(case.peak_rss_bytes / MB, 1),
        "maxRequestsPerCredential": case.max_requests_per_credential,
        "floorSeconds": round(case.floor_seconds, 3),
        "vsFloor": _ratio(case.vs_floor),
        "requestsPerDay": per_day,
        "shareOfDailyCap": None if per_day is None else round(per_day / DAILY_CAP, 4),
        "changesFound": case.changes_found,
        "changesExpected": case.changes_expected,
        "unpublishedPosts": case.unpublished_posts,
        "postsExpected": case.posts_expected,
        "errors": case.errors,
        "failure": case.failure,
        "measured": case.measured,
        "extrapolated": case.extrapolated,
        "cycles": case.cycles,
        "latencyP50": _ratio(case.latency_p50),
        "latencyP99": _ratio(case.latency_p99),
        "latencyMax": _ratio(case.latency_max),
        "takedowns": case.takedowns,
    }
