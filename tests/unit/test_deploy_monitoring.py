"""The monitoring files under deploy/: the Prometheus rules parse (YAML and PromQL), name only
metrics the service exports, and carry the same alerts and thresholds as the service's own
rules; the Grafana dashboard's queries do too, and it charts every metric the service exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from mls_sync.config import Settings
from mls_sync.observability.alerts import (
    CREDENTIAL_SUSPENDED,
    ERROR_RATE_HIGH,
    PLATFORM_API_VERSION_RETIRED,
    PLATFORM_RULES,
    PLATFORM_TOKEN_EXPIRING,
    RULES,
    RUN_SLOW,
)
from mls_sync.observability.metrics import METRICS, RUN_DURATION_BUCKETS
from mls_sync.social.versions import POLICIES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES_FILE = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD_FILE = DEPLOY / "grafana" / "mls-sync-dashboard.json"
# Grafana fills these in before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """Every series selector in a PromQL expression (raises ValueError if it does not parse)."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def matchers(selector: promql_parser.VectorSelector) -> dict[str, str]:
    return {m.name: m.value for m in selector.matchers.matchers}


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def recorded(rules: list[dict[str, Any]]) -> set[str]:
    return {rule["record"] for rule in rules if "record" in rule}


def test_the_rules_file_is_prometheus_shaped(rules: list[dict[str, Any]]) -> None:
    document = yaml.safe_load(RULES_FILE.read_text())
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    for rule in rules:
        assert ("alert" in rule) != ("record" in rule), rule
        assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}, rule
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        if "alert" in rule:
            assert rule["labels"]["severity"] in ("critical", "warning")
            assert rule["annotations"]["summary"]


def test_every_expression_parses_and_names_only_exported_metrics(
    rules: list[dict[str, Any]], recorded: set[str]
) -> None:
    exported = METRICS.names()
    for rule in rules:
        for selector in selectors(rule["expr"]):
            assert selector.name in exported | recorded, (rule.get("alert"), selector.name)


def test_the_service_rules_are_shipped_with_the_settings_thresholds(
    rules: list[dict[str, Any]],
) -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    by_name = {rule["alert"]: rule for rule in rules if "alert" in rule}
    by_record = {rule["record"]: rule for rule in rules if "record" in rule}
    assert set(RULES) <= set(by_name)

    error_rate = promql_parser.parse(by_name[ERROR_RATE_HIGH]["expr"])
    assert isinstance(error_rate, promql_parser.BinaryExpr)
    assert isinstance(error_rate.rhs, promql_parser.NumberLiteral)
    assert error_rate.rhs.val == pytest.approx(defaults.alert_error_rate)

    # The slow-run alert counts the runs above the histogram bucket at the threshold.
    slow = by_name[RUN_SLOW]["expr"]
    exprs = [slow] + [by_record[s.name]["expr"] for s in selectors(slow) if s.name in by_record]
    buckets = [
        matchers(s)["le"]
        for expr in exprs
        for s in selectors(expr)
        if s.name == "mls_sync_run_duration_seconds_bucket"
    ]
    assert buckets == [str(defaults.alert_run_seconds)]
    assert defaults.alert_run_seconds in RUN_DURATION_BUCKETS


def test_the_platform_alerts_are_shipped_with_the_severity_the_service_sends(
    rules: list[dict[str, Any]],
) -> None:
    by_name = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert set(PLATFORM_RULES) <= set(by_name)
    assert by_name[PLATFORM_API_VERSION_RETIRED]["labels"]["severity"] == "critical"
    assert by_name[PLATFORM_TOKEN_EXPIRING]["labels"]["severity"] == "warning"
    assert by_name[CREDENTIAL_SUSPENDED]["labels"]["severity"] == "critical"
    # The description names every setting an operator may have to change.
    description = by_name[PLATFORM_API_VERSION_RETIRED]["annotations"]["description"]
    for policy in POLICIES.values():
        assert policy.setting in description


def test_the_prometheus_config_loads_the_rules_file() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert [(RULES_FILE.parent / f).resolve() for f in config["rule_files"]] == [RULES_FILE]
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


def test_the_dashboard_queries_parse_and_name_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exported = METRICS.names()
    for title, expr in dashboard_queries():
        for selector in selectors(expr):
            assert selector.name in exported, (title, selector.name)


def test_the_dashboard_charts_every_metric_the_service_defines() -> None:
    charted = {s.name for _, expr in dashboard_queries() for s in selectors(expr)}
    families = {
        family.name for family in METRICS.registry.collect() if family.name.startswith("mls_sync_")
    }
    missing = {
        family
        for family in families
        if not any(name == family or name.startswith(family + "_") for name in charted)
    }
    assert missing == set()
