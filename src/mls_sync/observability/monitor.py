"""What happens after each run: its metrics are recorded, the alert rules evaluated, and the
alerts that fire are sent. The engine calls `RunMonitor.run_finished`; the runtime builds it."""

from __future__ import annotations

import httpx
import structlog

from mls_sync.config import Settings
from mls_sync.observability.alerts import Alert, FinishedRun, Notifier, Thresholds, evaluate
from mls_sync.observability.metrics import METRICS, Metrics

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

    async def run_finished(self, run: FinishedRun) -> list[Alert]:
        """Never raises: monitoring must not turn a finished sync into a failed one."""
        try:
            self._metrics.observe_run(
                trigger=run.trigger,
                scope=run.scope,
                success=run.success,
                seconds=run.duration_seconds,
                result=run.result,
            )
            alerts = evaluate(run, self._thresholds)
            for alert in alerts:
                self._metrics.alerts_fired.labels(alert.rule).inc()
            await self._notifier.notify(alerts)
        except Exception:
            log.exception("run monitoring failed", sync_run_id=run.run_id)
            return []
        return alerts


def run_monitor(settings: Settings, http: httpx.AsyncClient) -> RunMonitor:
    """The monitor `settings` describe: thresholds and the webhook (if any)."""
    url = settings.alert_webhook_url
    notifier = Notifier(http, url.get_secret_value() if url is not None else None)
    return RunMonitor(
        notifier,
        Thresholds(error_rate=settings.alert_error_rate, run_seconds=settings.alert_run_seconds),
    )
