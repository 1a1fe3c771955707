"""Plumbing the platform clients share: send a request, read JSON, build safe errors.

Every failure mode that is not about a particular platform's error format lives here, so the
clients agree on what a timeout, a refused connection or an HTML error page means.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from mls_sync.social.base import ErrorKind, PlatformError

_MAX_MESSAGE = 300
_REDACTED = "[redacted]"


async def send_delete(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    """DELETE `url`; network failures become TRANSIENT errors carrying the contract's messages."""
    return await send(http, "DELETE", url, headers=headers)


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    """Any request; network failures become TRANSIENT errors carrying the contract's messages."""
    try:
        return await http.request(method, url, headers=headers, params=params, data=data, auth=auth)
    except httpx.TimeoutException as exc:
        # The message is part of the product contract (DESIGN.md section 5): keep it verbatim.
        raise PlatformError(ErrorKind.TRANSIENT, "Network error: Request timeout") from exc
    except httpx.TransportError as exc:
        raise PlatformError(ErrorKind.TRANSIENT, f"Network error: {_reason(exc)}") from exc
    except httpx.DecodingError as exc:
        # A body whose Content-Encoding lies (truncated gzip from a proxy, say).
        raise PlatformError(ErrorKind.TRANSIENT, "Network error: Unreadable response") from exc


def _reason(exc: httpx.TransportError) -> str:
    # httpx/httpcore messages vary by OS and version ("[Errno 111] ...", "All connection attempts
    # failed"); a fixed short phrase per failure class keeps user-facing text stable.
    if isinstance(exc, httpx.ConnectError):
        return "Connection failed"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "Connection closed unexpectedly"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "Connection interrupted"
    if isinstance(exc, httpx.ProxyError):
        return "Proxy error"
    return type(exc).__name__


def read_json(response: httpx.Response) -> object | None:
    """The parsed body, or None when it is empty or not JSON (whatever the Content-Type says).

    Graph has served JSON as `text/javascript`, so the header is not trusted either way.
    """
    if not response.content:
        return None
    try:
        parsed: object = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed


Secrets = str | Iterable[str | None]


def platform_error(
    kind: ErrorKind,
    message: str,
    secrets: Secrets,
    response: httpx.Response | None = None,
    *,
    retry_after: float | None = None,
) -> PlatformError:
    """A PlatformError whose message can be shown to a user or logged: no token or client
    secret (platforms echo them back), bounded size."""
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        if secret:
            message = message.replace(secret, _REDACTED)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    status = response.status_code if response is not None else None
    return PlatformError(kind, message, retry_after=retry_after, status_code=status)


def unexpected_body(label: str, response: httpx.Response, token: Secrets) -> PlatformError:
    # An HTML page from a proxy or load balancer where the API promises JSON: most likely a
    # passing outage, so it is retried rather than marking the post as failed for good.
    content_type = response.headers.get("content-type", "no content type")
    return platform_error(
        ErrorKind.TRANSIENT,
        f"{label} returned an unexpected response that is not JSON "
        f"(HTTP {response.status_code}, {content_type})",
        token,
        response,
    )


def server_error(label: str, response: httpx.Response, token: Secrets) -> PlatformError:
    return platform_error(
        ErrorKind.TRANSIENT,
        f"{label} is having trouble (HTTP {response.status_code}); will retry",
        token,
        response,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from an HTTP `Retry-After` (delta-seconds or HTTP-date, RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
