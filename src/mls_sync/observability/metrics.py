"""Prometheus metrics (prometheus-client), served at `GET /metrics`.

Counters and the run histogram are updated where things happen (the engine, the MLS transport,
the unpublish drain). What lives in the database (connections by state, the outbox) is read at
scrape time instead: `await METRICS.store.refresh(read)` just before rendering, with the reader
the runtime offers (services/monitoring.py), so every process (and every replica) reports the
same truth, not what it happened to see itself, and this module never reaches the storage.

One process-wide `METRICS`, like the logging configuration: the hooks sit deep in the MLS
transport and the unpublish drain, and threading an object through every constructor for
counters would buy nothing. Tests read deltas with `METRICS.value(...)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mls_sync.domain.results import SyncResult
from mls_sync.domain.status import ConnectionState

# The 300 s bucket is the slow-run alert's threshold (deploy/prometheus/alerts.yml counts the
# runs above it); keep a bucket at MLS_SYNC_ALERT_RUN_SECONDS when changing either.
RUN_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# A one-minute feed cadence aims under 90 s at p99; the default 15 minutes, under 20 minutes.
TAKEDOWN_BUCKETS = (5.0, 15.0, 30.0, 60.0, 90.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0)

# Where an error came from: the MLS refused the credentials (the connection expires) or
# suspended them (over its limits), an MLS
# request failed (network, 5xx, 429 beyond the retries), a listing could not be synced (gone
# from the MLS, unknown status), a post could not be unpublished, the connection's own
# configuration is broken, or our own bug.
ErrorKind = Literal[
    "mls_auth",
    "mls_suspended",
    "mls_request",
    "listing",
    "unpublish",
    "config",
    "deadline",
    "internal",
]
ERROR_KINDS: tuple[ErrorKind, ...] = (
    "mls_auth",
    "mls_suspended",  # the vendor suspended the credential (over its limits)
    "mls_request",
    "listing",
    "unpublish",
    "config",
    "deadline",  # a feed's run stopped at MLS_SYNC_CONNECTION_RUN_SECONDS
    "internal",
)


@dataclass
class StoreSnapshot:
    """What the database said at the last scrape."""

    mls_connections: dict[str, int] = field(default_factory=dict)  # by state
    platform_connections: dict[tuple[str, str], int] = field(default_factory=dict)
    outbox_depth: int = 0
    outbox_oldest_age_seconds: float = 0.0


class StoreCollector(Collector):
    """Gauges computed from the database; `refresh` before each render."""

    def __init__(self) -> None:
        self.snapshot = StoreSnapshot()

    async def refresh(self, read: Callable[[], Awaitable[StoreSnapshot]]) -> StoreSnapshot:
        self.snapshot = await read()
        return self.snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        mls = GaugeMetricFamily(
            "mls_sync_mls_connections", "MLS connections by state", labels=["state"]
        )
        # Every state is reported, zeros too, so that alert expressions always have a series.
        for state in ConnectionState:
            mls.add_metric([state.value], snap.mls_connections.get(state.value, 0))
        yield mls
        platforms = GaugeMetricFamily(
            "mls_sync_platform_connections",
            "Social platform connections by platform and state",
            labels=["platform", "state"],
        )
        for (platform, platform_state), count in sorted(snap.platform_connections.items()):
            platforms.add_metric([platform, platform_state], count)
        yield platforms
        yield GaugeMetricFamily(
            "mls_sync_outbox_jobs", "Unpublish jobs waiting in the outbox", value=snap.outbox_depth
        )
        yield GaugeMetricFamily(
            "mls_sync_outbox_oldest_job_age_seconds",
            "Age of the oldest unpublish job in the outbox (0 when it is empty)",
            value=snap.outbox_oldest_age_seconds,
        )


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.run_duration = Histogram(
            "mls_sync_run_duration_seconds",
            "Duration of one sync run (one MLS connection, or one listing)",
            ["trigger", "scope", "outcome"],
            buckets=RUN_DURATION_BUCKETS,
            registry=r,
        )
        self.listings_checked = Counter(
            "mls_sync_listings_checked", "Listings a run checked", ["trigger"], registry=r
        )
        self.status_changes = Counter(
            "mls_sync_status_changes",
            "Listing status changes applied",
            ["old_status", "new_status"],
            registry=r,
        )
        self.posts_unpublished = Counter(
            "mls_sync_posts_unpublished", "Posts taken down", ["platform"], registry=r
        )
        self.takedown_latency = Histogram(
            "mls_sync_takedown_latency_seconds",
            "From the MLS's change (the record's ModificationTimestamp) to the platform's "
            "confirmed delete of the post",
            ["platform"],
            buckets=TAKEDOWN_BUCKETS,
            registry=r,
        )
        self.errors = Counter("mls_sync_errors", "Errors by kind", ["kind"], registry=r)
        self.mls_requests = Counter(
            "mls_sync_mls_requests", "Requests sent to an MLS", ["profile"], registry=r
        )
        self.mls_rate_limited = Counter(
            "mls_sync_mls_rate_limited",
            "MLS answers that said slow down (HTTP 429 or the vendor's rate-limit code)",
            ["profile"],
            registry=r,
        )
        self.alerts_fired = Counter(
            "mls_sync_alerts_fired",
            "Alerts raised (after runs, and platform alerts as they happen)",
            ["rule"],
            registry=r,
        )
        self.platform_version_refusals = Counter(
            "mls_sync_platform_api_version_refusals",
            "Platform answers saying the API version we send is retired (a setting to change)",
            ["platform", "version"],
            registry=r,
        )
        self.platform_tokens_expiring = Counter(
            "mls_sync_platform_tokens_expiring",
            "Platform tokens found expiring soon that cannot be refreshed (warned once each)",
            ["platform"],
            registry=r,
        )
        for kind in ERROR_KINDS:  # every kind exported from the start, at zero
            self.errors.labels(kind)
        self.store = StoreCollector()
        r.register(self.store)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    # hooks

    def observe_run(
        self, *, trigger: str, scope: str, success: bool, seconds: float, result: SyncResult
    ) -> None:
        outcome = "success" if success else "failure"
        self.run_duration.labels(trigger, scope, outcome).observe(seconds)
        self.listings_checked.labels(trigger).inc(result.total_listings)
        for change in result.status_changes:
            self.status_changes.labels(str(change.old_status), str(change.new_status)).inc()

    def error(self, kind: ErrorKind, count: int = 1) -> None:
        if count:
            self.errors.labels(kind).inc(count)

    # By vendor profile, never by host: users choose hosts, so a host label would grow
    # without bound and show every user's MLS (and private hosts) to whoever reads /metrics.
    def mls_request(self, profile: str) -> None:
        self.mls_requests.labels(profile).inc()

    def mls_rate_limit(self, profile: str) -> None:
        self.mls_rate_limited.labels(profile).inc()

    def post_unpublished(self, platform: str, *, latency_seconds: float | None = None) -> None:
        self.posts_unpublished.labels(platform).inc()
        if latency_seconds is not None and latency_seconds >= 0:
            self.takedown_latency.labels(platform).observe(latency_seconds)

    def platform_version_refused(self, platform: str, version: str) -> None:
        self.platform_version_refusals.labels(platform, version).inc()

    def platform_token_expiring(self, platform: str) -> None:
        self.platform_tokens_expiring.labels(platform).inc()

    # reading

    def render(self) -> bytes:
        """The text exposition format (call `store.refresh` first)."""
        return generate_latest(self.registry)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """One sample's value, 0 when it has not been recorded (tests, the dashboard)."""
        found = self.registry.get_sample_value(name, dict(labels or {}))
        return found if found is not None else 0.0

    def names(self) -> set[str]:
        """Every series name this service exports (`_total`, `_bucket`, ... included), also
        for labelled metrics that have no sample yet."""
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("_count", "_sum", "_created"),
            "gauge": ("",),
        }
        found: set[str] = set()
        for family in self.registry.collect():
            found.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
            found.update(sample.name for sample in family.samples)
        return found


METRICS = Metrics()
