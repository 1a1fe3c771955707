"""The Lambda events the handler accepts, and the HTTP answers it gives. Pure: no I/O.

- An EventBridge schedule (a `rate(15 minutes)` rule, or EventBridge Scheduler):
  `{"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "time": ...,
  "resources": ["arn:aws:events:...:rule/NAME"], "detail": {}}`
  (https://docs.aws.amazon.com/lambda/latest/dg/with-scheduled-events.html).
- An HTTP request for the cron route, from API Gateway REST APIs and HTTP APIs with payload
  format 1.0 (`httpMethod`, `path`, `headers`), or from HTTP APIs with payload format 2.0 and
  Lambda function URLs (`"version": "2.0"`, `rawPath`, `requestContext.http.method`,
  lower-case `headers`)
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html,
  https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html).

HTTP answers are proxy responses (`statusCode`, `headers`, `body` as a JSON string), which all
three HTTP front doors understand, with the same status codes and bodies as the FastAPI cron
route (`POST /api/cron/sync-mls-status`, GET too for Vercel-style cron callers).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import SecretStr

CRON_PATH = "/api/cron/sync-mls-status"
CRON_METHODS = ("GET", "POST")
# The FastAPI route's own bodies (api/deps.py), so a caller cannot tell the two apart.
WRONG_SECRET = "Missing or wrong cron secret"
NO_SECRET = "The cron endpoint is disabled: set CRON_SECRET to enable it"

ProxyResponse = dict[str, Any]
HttpSource = Literal["api-gateway-v1", "api-gateway-v2", "function-url"]


class UnsupportedEventError(ValueError):
    """An event this function does not handle; the message says what was received."""


@dataclass(frozen=True)
class ScheduledEvent:
    source: str
    time: str | None
    rule: str | None


@dataclass(frozen=True)
class HttpRequest:
    source: HttpSource
    method: str
    path: str
    headers: Mapping[str, str]  # names lower-cased

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def parse_event(event: object) -> ScheduledEvent | HttpRequest:
    if not isinstance(event, dict):
        raise UnsupportedEventError(
            f"Unsupported event: expected a JSON object, got {type(event).__name__}"
        )
    if "detail-type" in event:
        return _scheduled(event)
    if event.get("version") == "2.0" and "rawPath" in event:
        return _http_v2(event)
    if "httpMethod" in event:
        return _http_v1(event)
    keys = ", ".join(sorted(str(k) for k in event)[:8]) or "none"
    raise UnsupportedEventError(
        "Unsupported event: expected an EventBridge schedule or an API Gateway / function URL "
        f"request (keys: {keys})"
    )


def _scheduled(event: dict[str, Any]) -> ScheduledEvent:
    detail_type, source = event.get("detail-type"), event.get("source")
    if detail_type != "Scheduled Event" or source not in ("aws.events", "aws.scheduler"):
        raise UnsupportedEventError(
            f"Unsupported EventBridge event: {detail_type!r} from {source!r}; this function "
            "syncs on 'Scheduled Event' from a schedule rule"
        )
    resources = event.get("resources")
    rule = resources[0] if isinstance(resources, list) and resources else None
    return ScheduledEvent(source=source, time=event.get("time"), rule=rule)


def _http_v2(event: dict[str, Any]) -> HttpRequest:
    context = _object(event.get("requestContext"), "requestContext")
    method = _object(context.get("http"), "requestContext.http").get("method")
    path = event.get("rawPath")
    if not isinstance(method, str) or not isinstance(path, str):
        raise UnsupportedEventError("Malformed HTTP event: no requestContext.http.method/rawPath")
    domain = context.get("domainName")
    source: HttpSource = (
        "function-url" if isinstance(domain, str) and ".lambda-url." in domain else "api-gateway-v2"
    )
    # An HTTP API's named stage is part of rawPath ("/prod/api/..."); $default is not.
    stage = context.get("stage")
    if isinstance(stage, str) and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return HttpRequest(source, method.upper(), path, _headers(event.get("headers")))


def _http_v1(event: dict[str, Any]) -> HttpRequest:
    method, path = event.get("httpMethod"), event.get("path")
    if not isinstance(method, str) or not isinstance(path, str):
        raise UnsupportedEventError("Malformed HTTP event: httpMethod and path must be strings")
    return HttpRequest("api-gateway-v1", method.upper(), path, _headers(event.get("headers")))


def _object(value: object, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnsupportedEventError(f"Malformed HTTP event: {name} is missing")
    return value


def _headers(value: object) -> dict[str, str]:
    # Payload 1.0 keeps the client's spelling ("Authorization"); 2.0 lower-cases. REST APIs
    # send null when there are none.
    if not isinstance(value, dict):
        return {}
    return {str(k).lower(): v for k, v in value.items() if isinstance(v, str)}


def route(request: HttpRequest, cron_secret: SecretStr | None) -> ProxyResponse | None:
    """The refusal for a request that must not start a sync, or None when it may."""
    if request.path.rstrip("/") != CRON_PATH:
        return proxy_response(404, {"detail": "Not Found"})
    if request.method not in CRON_METHODS:
        return proxy_response(
            405, {"detail": "Method Not Allowed"}, {"allow": ", ".join(CRON_METHODS)}
        )
    expected = cron_secret.get_secret_value() if cron_secret is not None else ""
    if not expected:
        return proxy_response(503, {"detail": NO_SECRET})
    if not hmac.compare_digest(_bearer(request).encode(), expected.encode()):
        return proxy_response(401, {"detail": WRONG_SECRET}, {"www-authenticate": "Bearer"})
    return None


def _bearer(request: HttpRequest) -> str:
    """The credentials of `Authorization: Bearer <credentials>` (scheme case-insensitive, as
    FastAPI's HTTPBearer reads it), or "" for anything else."""
    scheme, _, credentials = (request.header("authorization") or "").partition(" ")
    return credentials if scheme.lower() == "bearer" else ""


def proxy_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> ProxyResponse:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }
