"""Alerts after each run: pure rules over a finished run, and a notifier that tells people.

The rules and their names are the same as the Prometheus alerting rules shipped in
`deploy/prometheus/alerts.yml`, so an operator sees one alert vocabulary whether they run
Prometheus or only read the log and a Slack channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog

from mls_sync.domain.results import SyncResult

log = structlog.get_logger(__name__)

RUN_FAILED = "MlsSyncRunFailed"
ERROR_RATE_HIGH = "MlsSyncErrorRateHigh"
RUN_SLOW = "MlsSyncRunSlow"
# Raised as they happen, not by a finished run: by the outbox and the token care, and by the
# engine when an MLS suspends a credential.
PLATFORM_API_VERSION_RETIRED = "MlsSyncPlatformApiVersionRetired"
PLATFORM_TOKEN_EXPIRING = "MlsSyncPlatformTokenExpiring"
CREDENTIAL_SUSPENDED = "MlsSyncCredentialSuspended"
RULES = (RUN_FAILED, ERROR_RATE_HIGH, RUN_SLOW)
PLATFORM_RULES = (PLATFORM_API_VERSION_RETIRED, PLATFORM_TOKEN_EXPIRING, CREDENTIAL_SUSPENDED)


@dataclass(frozen=True)
class Thresholds:
    error_rate: float = 0.10  # errors per listing checked, above which a run alerts
    run_seconds: float = 300.0  # a run longer than this alerts


@dataclass(frozen=True)
class FinishedRun:
    """What the engine knows about one run when it has ended."""

    run_id: str
    connection_id: str
    connection_name: str
    user_id: str | None
    trigger: str
    scope: str
    success: bool
    message: str
    started_at: datetime
    finished_at: datetime
    result: SyncResult

    @property
    def duration_seconds(self) -> float:
        return max(0.0, (self.finished_at - self.started_at).total_seconds())

    @property
    def error_rate(self) -> float:
        """Errors per listing checked; 0 for a run that checked none."""
        total = self.result.total_listings
        return len(self.result.errors) / total if total else 0.0


@dataclass(frozen=True)
class Alert:
    rule: str
    severity: str  # "critical" | "warning", as in the Prometheus rules' labels
    summary: str
    value: float
    threshold: float | None
    run: FinishedRun

    def text(self) -> str:
        """One Slack-compatible line (mrkdwn)."""
        run = self.run
        if run.scope == "feed":  # a feed's own failure: once, not once per member
            where = f"MLS feed {run.connection_name or run.connection_id}"
        elif run.connection_id:
            where = f"MLS connection {run.connection_name or run.connection_id}"
        else:
            where = f"{run.trigger} run over every MLS connection"
        return f"*{self.rule}* ({self.severity}) {where}: {self.summary} [run {run.run_id}]"

    def payload(self) -> dict[str, Any]:
        """The webhook body: Slack reads `text`; other receivers get the fields too."""
        run = self.run
        return {
            "text": self.text(),
            "alert": self.rule,
            "severity": self.severity,
            "summary": self.summary,
            "value": self.value,
            "threshold": self.threshold,
            "runId": run.run_id,
            "connectionId": run.connection_id,
            "userId": run.user_id,
            "trigger": run.trigger,
            "scope": run.scope,
            "success": run.success,
            "message": run.message,
            "startedAt": run.started_at.isoformat(),
            "finishedAt": run.finished_at.isoformat(),
            "durationSeconds": round(run.duration_seconds, 3),
            "totalListings": run.result.total_listings,
            "errors": len(run.result.errors),
        }

    def log_fields(self) -> dict[str, Any]:
        run = self.run
        return {
            "connection_id": run.connection_id,
            "sync_run_id": run.run_id,
            "user_id": run.user_id,
            "trigger": run.trigger,
            "scope": run.scope,
        }


@dataclass(frozen=True)
class PlatformAlert:
    """An alert raised when it is seen (no run behind it): about a social platform, or an
    MLS vendor (`platform` names it, e.g. `mls:mlsgrid`)."""

    rule: str
    severity: str
    summary: str
    platform: str
    # camelCase facts for the webhook body (version, setting, connection, expiry, ...)
    details: dict[str, Any]

    def text(self) -> str:
        return f"*{self.rule}* ({self.severity}) {self.platform}: {self.summary}"

    def payload(self) -> dict[str, Any]:
        return {
            "text": self.text(),
            "alert": self.rule,
            "severity": self.severity,
            "summary": self.summary,
            "platform": self.platform,
            **self.details,
        }

    def log_fields(self) -> dict[str, Any]:
        return {"platform": self.platform, **self.details}


def credential_suspended_alert(profile: str, *, feed_id: str, until: datetime) -> PlatformAlert:
    """The MLS suspended a feed's credential: nothing is sent until `until`; a person should
    find out why the budget was exceeded (another client on the same token, a changed
    limit) before the vendor's warnings turn into a revoked token."""
    return PlatformAlert(
        CREDENTIAL_SUSPENDED,
        "critical",
        f"the MLS suspended the feed's credential until {until:%Y-%m-%d %H:%M} UTC "
        "(over its request limits); no request is sent before then",
        f"mls:{profile}",
        {"feedId": feed_id, "suspendedUntil": until.isoformat()},
    )


def version_retired_alert(platform: str, version: str, message: str) -> PlatformAlert:
    return PlatformAlert(
        PLATFORM_API_VERSION_RETIRED,
        "critical",
        message,
        platform,
        {"apiVersion": version},
    )


def token_expiring_alert(
    platform: str, *, connection_id: str, user_id: str, expires_at: datetime
) -> PlatformAlert:
    summary = (
        f"a token that cannot be refreshed expires on {expires_at:%Y-%m-%d %H:%M} UTC: the "
        "user must reconnect before then, or that platform's posts stay up when the listing sells"
    )
    return PlatformAlert(
        PLATFORM_TOKEN_EXPIRING,
        "warning",
        summary,
        platform,
        {
            "platformConnectionId": connection_id,
            "userId": user_id,
            "expiresAt": expires_at.isoformat(),
        },
    )


def evaluate(run: FinishedRun, thresholds: Thresholds) -> list[Alert]:
    """The alerts a finished run raises: failed, error rate over the threshold, too slow.

    A failed run's listings usually all carry the failure as their error: the failure alert
    says it once, so the error-rate rule only judges runs that succeeded."""
    alerts: list[Alert] = []
    if not run.success:
        alerts.append(Alert(RUN_FAILED, "critical", f"sync failed: {run.message}", 1.0, None, run))
    elif run.error_rate > thresholds.error_rate:
        errors, total = len(run.result.errors), run.result.total_listings
        alerts.append(
            Alert(
                ERROR_RATE_HIGH,
                "warning",
                f"{errors} errors in {total} listings ({run.error_rate:.0%}, over "
                f"{thresholds.error_rate:.0%})",
                run.error_rate,
                thresholds.error_rate,
                run,
            )
        )
    alerts.extend(evaluate_duration(run, thresholds))
    return alerts


def evaluate_duration(run: FinishedRun, thresholds: Thresholds) -> list[Alert]:
    """The slow-run rule alone: what a run over every connection is judged by (its
    connections' failures and error rates have alerted one by one already)."""
    if run.duration_seconds <= thresholds.run_seconds:
        return []
    summary = f"the run took {run.duration_seconds:.0f} s (over {thresholds.run_seconds:.0f} s)"
    return [Alert(RUN_SLOW, "warning", summary, run.duration_seconds, thresholds.run_seconds, run)]


class Notifier:
    """Logs every alert and, with a webhook URL, POSTs it as JSON. A webhook that fails is
    logged and never fails the run."""

    def __init__(self, http: httpx.AsyncClient | None = None, webhook_url: str | None = None):
        self._http = http
        self._webhook_url = webhook_url or None

    async def notify(self, alerts: Sequence[Alert | PlatformAlert]) -> None:
        for alert in alerts:
            emit = log.error if alert.severity == "critical" else log.warning
            emit(
                f"Alert {alert.rule}: {alert.summary}",
                alert=alert.rule,
                severity=alert.severity,
                **alert.log_fields(),
            )
            if self._webhook_url is not None and self._http is not None:
                await self._post(alert)

    async def _post(self, alert: Alert | PlatformAlert) -> None:
        assert self._http is not None and self._webhook_url is not None
        try:
            response = await self._http.post(self._webhook_url, json=alert.payload())
            response.raise_for_status()
        except httpx.HTTPError as exc:
            # The URL may carry a secret (Slack's do): name the error, never the URL.
            log.warning(
                "alert webhook failed",
                alert=alert.rule,
                error=type(exc).__name__,
                status=getattr(getattr(exc, "response", None), "status_code", None),
            )
