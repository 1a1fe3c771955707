"""CloudWatch Embedded Metric Format: a run's figures as JSON log lines CloudWatch turns into
metrics, with no agent, no API call and no extra dependency.

Specification:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
A document is one JSON object on one line: `_aws` holds the `Timestamp` (milliseconds since the
epoch) and `CloudWatchMetrics`, a list of directives `{Namespace, Dimensions, Metrics}`; every
metric a directive names, and every dimension key, is a member of the root object holding the
value. At most 100 metrics per document and 30 keys per dimension set. Other root members are
kept in the log line (and searchable with Logs Insights) without becoming metrics.

One line per run over every connection (what the scheduler, the cron endpoint, `sync all` and
the Lambda handler run); with `emf_per_connection`, one more line per synced connection under a
`ConnectionId` dimension. The values come from the run's own result, not from another metrics
system, so they are exactly what the response reported.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from mls_sync.config import Settings
from mls_sync.domain.results import SyncResult
from mls_sync.observability.reports import RunReport

MAX_METRICS = 100
MAX_DIMENSIONS = 30
CONNECTION_DIMENSION = "ConnectionId"

# (metric name, unit); the values are read from a SyncResult.
_RESULT_METRICS: tuple[tuple[str, str], ...] = (
    ("ListingsChecked", "Count"),
    ("ListingsUpdated", "Count"),
    ("PostsUnpublished", "Count"),
    ("ListingsRestored", "Count"),
    ("Errors", "Count"),
)
_RUN_METRICS: tuple[tuple[str, str], ...] = (
    ("RunDuration", "Seconds"),
    *_RESULT_METRICS,
    ("ConnectionsSynced", "Count"),
    ("ConnectionsFailed", "Count"),
    ("ConnectionsSkipped", "Count"),
    ("RunFailed", "Count"),
)
# Root members that are context, not metrics: a dimension must not take their names.
_CONTEXT_KEYS = frozenset({"_aws", "event", "trigger", "success", "message"})
RESERVED_NAMES = _CONTEXT_KEYS | {name for name, _ in _RUN_METRICS} | {CONNECTION_DIMENSION}


def on_lambda(environ: Mapping[str, str] | None = None) -> bool:
    """The Lambda runtime sets AWS_LAMBDA_FUNCTION_NAME in every function's environment."""
    return bool((os.environ if environ is None else environ).get("AWS_LAMBDA_FUNCTION_NAME"))


def emf_active(settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    if settings.emf_enabled is not None:
        return settings.emf_enabled
    return on_lambda(environ)


@dataclass(frozen=True)
class EmfConfig:
    namespace: str
    dimensions: Mapping[str, str] = field(default_factory=lambda: {"Service": "mls-sync"})
    per_connection: bool = False

    def __post_init__(self) -> None:
        clash = RESERVED_NAMES & set(self.dimensions)
        if clash:
            raise ValueError(
                f"MLS_SYNC_EMF_DIMENSIONS: names taken by the metric lines: {sorted(clash)}"
            )
        if not 0 < len(self.dimensions) < MAX_DIMENSIONS:
            raise ValueError(f"EMF needs 1 to {MAX_DIMENSIONS - 1} dimensions")

    @classmethod
    def from_settings(cls, settings: Settings) -> EmfConfig:
        return cls(
            namespace=settings.emf_namespace,
            dimensions=dict(settings.emf_dimensions),
            per_connection=settings.emf_per_connection,
        )


def run_documents(report: RunReport, config: EmfConfig) -> list[dict[str, Any]]:
    """The run's EMF documents: the run's own, then one per synced connection if asked for."""
    result = report.result
    synced = [c for c in result.connections if not c.skipped]
    failed = sum(1 for c in synced if not c.success)
    values: dict[str, float] = {
        "RunDuration": round(report.duration_seconds, 3),
        **_result_values(result),
        "ConnectionsSynced": len(synced) - failed,
        "ConnectionsFailed": failed,
        "ConnectionsSkipped": result.skipped_connections,
        "RunFailed": 0 if report.success else 1,
    }
    timestamp = int(report.finished_at.timestamp() * 1000)
    context = {"event": "mls_sync_run", "trigger": report.trigger, "success": report.success}
    documents = [
        _document(
            config,
            timestamp,
            dict(config.dimensions),
            _RUN_METRICS,
            values,
            {**context, "message": report.message},
        )
    ]
    if config.per_connection:
        for connection in synced:
            documents.append(
                _document(
                    config,
                    timestamp,
                    {**config.dimensions, CONNECTION_DIMENSION: connection.connection_id},
                    _RESULT_METRICS,
                    _result_values(connection),
                    {**context, "event": "mls_sync_connection", "success": connection.success},
                )
            )
    return documents


def _result_values(result: SyncResult) -> dict[str, float]:
    return {
        "ListingsChecked": result.total_listings,
        "ListingsUpdated": result.updated_listings,
        "PostsUnpublished": result.unpublished_posts,
        "ListingsRestored": result.restored_listings,
        "Errors": len(result.errors),
    }


def _document(
    config: EmfConfig,
    timestamp: int,
    dimensions: dict[str, str],
    metrics: tuple[tuple[str, str], ...],
    values: dict[str, float],
    context: dict[str, Any],
) -> dict[str, Any]:
    directive = {
        "Namespace": config.namespace,
        "Dimensions": [list(dimensions)],
        "Metrics": [{"Name": name, "Unit": unit} for name, unit in metrics],
    }
    return {
        "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [directive]},
        **context,
        **dimensions,
        **{name: values[name] for name, _ in metrics},
    }


class EmfWriter:
    """A run observer that prints the run's EMF documents, one line each, to stdout (where the
    Lambda runtime and the CloudWatch agent pick them up)."""

    def __init__(self, config: EmfConfig, stream: TextIO | None = None) -> None:
        self.config = config
        self._stream = stream

    def __call__(self, report: RunReport) -> None:
        stream = self._stream or sys.stdout  # looked up late: tests and runtimes swap stdout
        for document in run_documents(report, self.config):
            stream.write(json.dumps(document, separators=(",", ":")) + "\n")
        stream.flush()
