"""The benchmark's figures as JSON (camelCase, like every other JSON the project prints).

One run (one size) is an object; `mls-sync bench --json` prints `{"runs": [...]}`. The table the
command prints is made from these same objects, so the two never disagree.
"""

from __future__ import annotations

from typing import Any

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
