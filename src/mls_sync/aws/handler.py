"""The AWS Lambda entry point, `mls_sync.aws.handler(event, context)`.

An EventBridge schedule, or a request to the cron route through a function URL or API Gateway,
runs exactly what the cron endpoint runs (`actions.sync_all_users`): every active MLS
connection of every user, one sync per connection at a time. A schedule gets the response
`{success, message, data}` as the function's result; an HTTP request gets it as the body of a
200 proxy response, after the same bearer check as the FastAPI route.

Each invocation runs its own event loop (`asyncio.run`) and opens and closes its own runtime:
nothing bound to a loop (database pool, HTTP clients) outlives the invocation, so a warm
container never reuses a connection from a loop that is gone. Opening costs a few
milliseconds against a run every 15 minutes. Settings and logging are set up once per container.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from mls_sync import actions
from mls_sync.aws.events import (
    HttpRequest,
    ProxyResponse,
    ScheduledEvent,
    UnsupportedEventError,
    parse_event,
    proxy_response,
    route,
)
from mls_sync.config import Settings
from mls_sync.domain.results import AggregatedResult, SyncActionResponse
from mls_sync.observability import configure_logging
from mls_sync.observability.emf import on_lambda

log = structlog.get_logger(__name__)

# sync_runs.trigger of the runs this function starts: the schedule is EventBridge's; a request
# to the cron route is a cron call like any other.
SCHEDULE_TRIGGER = "eventbridge"
HTTP_TRIGGER = "cron"


class LambdaHandler:
    """Callable as a Lambda handler. Without `settings`, reads them from the environment at the
    first invocation (the template passes secrets as environment variables)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._logging_ready = False

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        settings = self._setup()
        structlog.contextvars.bind_contextvars(
            aws_request_id=getattr(context, "aws_request_id", None)
        )
        try:
            return self._handle(event, settings)
        finally:
            structlog.contextvars.clear_contextvars()

    def _setup(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        if not self._logging_ready:
            settings = self._settings
            # CloudWatch Logs keeps each line as a record: JSON lines, whatever a TTY would say.
            fmt = "json" if on_lambda() else settings.log_format
            configure_logging(level=settings.log_level, fmt=fmt)
            self._logging_ready = True
        return self._settings

    def _handle(self, event: Any, settings: Settings) -> dict[str, Any]:
        try:
            request = parse_event(event)
        except UnsupportedEventError as exc:
            # Raised, not answered: a direct invocation sees the reason as its error, and an
            # event nobody can handle is not worth a retry (the template sets none).
            log.error("unsupported Lambda event", error=str(exc))
            raise
        if isinstance(request, ScheduledEvent):
            log.info("scheduled invocation", source=request.source, rule=request.rule)
            return self._sync(settings, SCHEDULE_TRIGGER)
        return self._http(request, settings)

    def _http(self, request: HttpRequest, settings: Settings) -> ProxyResponse:
        refusal = route(request, settings.cron_secret)
        if refusal is not None:
            log.warning(
                "cron request refused",
                status=refusal["statusCode"],
                method=request.method,
                path=request.path,
                source=request.source,
            )
            return refusal
        return proxy_response(200, self._sync(settings, HTTP_TRIGGER))

    def _sync(self, settings: Settings, trigger: str) -> dict[str, Any]:
        wire = asyncio.run(_sync_everyone(settings, trigger)).to_wire()
        log.info("MLS status sync response", trigger=trigger, response=wire)
        return wire


async def _sync_everyone(settings: Settings, trigger: str) -> SyncActionResponse[AggregatedResult]:
    # Imported here: the runtime imports this package (for the EMF writer), and this package
    # exports the handler, so a module-level import would be circular.
    from mls_sync.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        return await actions.sync_all_users(engine=runtime.engine, trigger=trigger)


handler = LambdaHandler()
