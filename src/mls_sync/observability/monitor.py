"""What happens after each run: its metrics are recorded, the alert rules evaluated, and the
alerts that fire are sent. The engine calls `RunMonitor.run_finished`; the runtime builds it."""

from __future__ import annotations

import httpx
import structlog

from mls_sync.config import Settings
from mls_sync.domain.results import SyncResult
from mls_sync.observability.alerts import (
    Alert,
    FinishedRun,
    Notifier,
    PlatformAlert,
    Thresholds,
    evaluate,
    evaluate_duration,
)
from mls_sync.observability.metrics import METRICS, Metrics
from mls_sync.observability.reports import RunReport

log = structlog.get_logger(__name__)


class RunMonitor:
    def __init__(
        self,
        notifier: Notifier,
        thresholds: Thresholds | None = None,
        metrics: Metrics = METRICS,
    ) -> None:
        self._notifier = notifier
        self._thresholds = thresholds or Thresholds()
        self._metrics = metrics

    async def run_finished(
        self, run: FinishedRun, *, observe: bool = True, alert: bool = True
    ) -> list[Alert]:
        """Never raises: monitoring must not turn a finished sync into a failed one. A feed's
        run is observed once with every member's listings (`observe`); its members' rows are
        judged by the alert rules only, so nothing is counted twice."""
        try:
            if observe:
                self._metrics.observe_run(
                    trigger=run.trigger,
                    scope=run.scope,
                    success=run.success,
                    seconds=run.duration_seconds,
                    result=run.result,
                )
            return await self._fire(evaluate(run, self._thresholds)) if alert else []
        except Exception:
            log.exception("run monitoring failed", sync_run_id=run.run_id)
            return []

    async def whole_run_finished(self, report: RunReport) -> list[Alert]:
        """A run over every connection (scheduler, cron endpoint, Lambda): the spec's 5-minute
        budget is for this whole job, which can be slow although each connection was quick.
        Never raises."""
        run = FinishedRun(
            run_id="",
            connection_id="",
            connection_name="",
            user_id=None,
            trigger=report.trigger,
            scope="all",
            success=report.success,
            message=report.message,
            started_at=report.started_at,
            finished_at=report.finished_at,
            # The summed totals, without the per-connection breakdown.
            result=SyncResult.model_construct(
                **{name: getattr(report.result, name) for name in SyncResult.model_fields}
            ),
        )
        try:
            return await self._fire(evaluate_duration(run, self._thresholds))
        except Exception:
            log.exception("run monitoring failed", trigger=report.trigger)
            return []

    async def platform_alert(self, alert: PlatformAlert) -> None:
        """An alert the outbox or the token care raised as it happened. Never raises."""
        try:
            self._metrics.alerts_fired.labels(alert.rule).inc()
            await self._notifier.notify([alert])
        except Exception:
            log.exception("platform alert failed", alert=alert.rule)

    async def _fire(self, alerts: list[Alert]) -> list[Alert]:
        for alert in alerts:
            self._metrics.alerts_fired.labels(alert.rule).inc()
        await self._notifier.notify(alerts)
        return alerts


def run_monitor(settings: Settings, http: httpx.AsyncClient) -> RunMonitor:
    """The monitor `settings` describe: thresholds and the webhook (if any)."""
    url = settings.alert_webhook_url
    notifier = Notifier(http, url.get_secret_value() if url is not None else None)
    return RunMonitor(
        notifier,
        Thresholds(error_rate=settings.alert_error_rate, run_seconds=settings.alert_run_seconds),
    )
