"""One GET to an MLS, done right: budget, auth (refetch once), retries, errors, JSON.

- Every attempt draws on the credential's budget before it is sent.
- 401/403 (or a vendor's auth error code): a refreshable credential fetches a new token and
  tries once more; a second refusal is MlsAuthError (the connection expires).
- 429 (or a vendor's rate-limit code): the whole credential pauses for Retry-After (or the
  backoff), then retries; a Retry-After longer than `max_retry_after` is not waited for. Where
  the profile says the vendor punishes (`suspension_seconds`: MLS Grid suspends the token),
  nothing is retried: MlsCredentialSuspended says until when the credential must rest. So
  too where the vendor names a time further off than a run waits (a Retry-After, or quota
  headers saying nothing is left until a reset: Bridge, Trestle): the credential rests until
  then rather than each cycle asking into the same refusal.
- 5xx and connection errors: exponential backoff with full jitter, `attempts` in all.
- Timeouts are not retried within a run: the request may have been counted by the MLS and the
  wait already cost the timeout; the next run asks again.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from mls_sync.egress import EgressRefused
from mls_sync.mls.auth import Authenticator
from mls_sync.mls.errors import (
    EGRESS_REFUSED,
    NETWORK_TIMEOUT,
    MlsAuthError,
    MlsCredentialSuspended,
    MlsPayloadError,
    MlsRequestError,
)
from mls_sync.mls.limits import (
    MAX_SUSPENSION_SECONDS,
    Budget,
    quota_from_headers,
    retry_after_seconds,
)
from mls_sync.mls.profiles import PROFILES, VendorProfile
from mls_sync.observability.metrics import METRICS


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int) -> float:
        # Full jitter: many workers backing off from one outage do not retry in lockstep.
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


class MlsTransport:
    def __init__(
        self,
        http: httpx.AsyncClient,
        auth: Authenticator,
        *,
        profile: VendorProfile = PROFILES["generic"],
        budget: Budget | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._http = http
        self._auth = auth
        self._profile = profile
        self._budget = budget
        self._retry = retry or RetryPolicy()
        self.requests_made = 0
        # Set when the vendor says the credential's quota is spent until a reset further off
        # than we would wait (Bridge's and Trestle's `-Remaining: 0`): the next request is
        # not sent, the credential rests until then (sync/suspensions.py marks the feeds).
        self._resting_until: datetime | None = None

    async def get_json(
        self, url: str, params: dict[str, str] | None, headers: dict[str, str] | None = None
    ) -> Any:
        response = await self.get(url, params, headers)
        try:
            return response.json()
        except ValueError:
            raise MlsPayloadError("body is not JSON") from None

    async def get(
        self, url: str, params: dict[str, str] | None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """The response to a GET with a 2xx (or 404) status; anything else raises."""
        if self._resting_until is not None and datetime.now(UTC) < self._resting_until:
            raise MlsCredentialSuspended(self._resting_until)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = await self._auth.token()
            response = await self._send(url, params, headers, token, attempt)
            if response is None:
                await asyncio.sleep(self._retry.delay(attempt))
                continue
            if self._budget is not None:
                self._budget.observe(response.headers)
            self._note_spent_quota(response.headers)
            code = vendor_code(response)
            status = response.status_code
            if status in (401, 403) or code in self._profile.auth_error_codes:
                if self._auth.refreshable and not refreshed:
                    refreshed = True
                    attempt -= 1  # a token refresh is not a failed attempt
                    self._auth.invalidate(token)
                    continue
                raise MlsAuthError(f"HTTP {status}")
            if status == 429 or code in self._profile.rate_limit_codes:
                METRICS.mls_rate_limit(self._profile.name)
                retry_after = response.headers.get("retry-after")
                wait = retry_after_seconds(retry_after)
                if self._profile.suspension_seconds is not None:
                    # A punishment, not a throttle: a retry would keep the usage high.
                    reset = retry_after_seconds(retry_after, cap=MAX_SUSPENSION_SECONDS)
                    rest = max(self._profile.suspension_seconds, reset or 0.0)
                    raise MlsCredentialSuspended(datetime.now(UTC) + timedelta(seconds=rest))
                if wait is not None and wait > self._retry.max_retry_after:
                    # The vendor named a time further off than a run waits: the credential
                    # rests until then, instead of the next cycle asking into the same 429.
                    raise MlsCredentialSuspended(datetime.now(UTC) + timedelta(seconds=wait))
                if self._resting_until is not None and datetime.now(UTC) < self._resting_until:
                    raise MlsCredentialSuspended(self._resting_until)  # headers said until when
                wait = self._retry.delay(attempt) if wait is None else wait
                if attempt >= self._retry.attempts:
                    raise MlsRequestError(f"MLS rate limit: HTTP {status}", status=status)
                if self._budget is not None:
                    self._budget.pause(wait)
                else:
                    await asyncio.sleep(wait)
                continue
            if status >= 500 and attempt < self._retry.attempts:
                await asyncio.sleep(self._retry.delay(attempt))
                continue
            if status >= 400 and status != 404:
                raise MlsRequestError(
                    f"MLS error: HTTP {status}{odata_message(response)}",
                    retryable=status >= 500,
                    status=status,
                )
            return response

    def _note_spent_quota(self, headers: httpx.Headers) -> None:
        _, pause = quota_from_headers(headers)
        if pause is not None and pause > self._retry.max_retry_after:
            self._resting_until = datetime.now(UTC) + timedelta(seconds=pause)

    async def _send(
        self,
        url: str,
        params: dict[str, str] | None,
        extra: dict[str, str] | None,
        token: str,
        attempt: int,
    ) -> httpx.Response | None:
        """The response, or None for a connection error worth another attempt."""
        if self._budget is not None:
            await self._budget.acquire()
        self.requests_made += 1
        METRICS.mls_request(self._profile.name)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if self._profile.gzip:
            headers["Accept-Encoding"] = "gzip"
        headers.update(extra or {})
        try:
            # httpx's timeouts bound each read, so an MLS that drips its answer a byte at a
            # time never trips them: the whole request gets the same number of seconds.
            async with asyncio.timeout(_whole_request_seconds(self._http.timeout)):
                return await self._http.get(url, params=params, headers=headers)
        except (httpx.TimeoutException, TimeoutError):
            raise MlsRequestError(NETWORK_TIMEOUT) from None
        except EgressRefused as exc:
            raise MlsRequestError(f"{EGRESS_REFUSED}: {exc}", retryable=False) from None
        except httpx.TransportError as exc:
            if attempt < self._retry.attempts:
                return None
            raise MlsRequestError(f"Network error: {type(exc).__name__}") from None


def _whole_request_seconds(timeout: httpx.Timeout) -> float | None:
    """The client's per-operation timeout, as the deadline of a whole request."""
    parts = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
    return max(parts) if parts else None


def vendor_code(response: httpx.Response) -> int | None:
    """A vendor's numeric error code from an OData error body (Spark: {"error": {"code":
    1020}}; the D.Code form of Spark's own API is read too)."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error") or body.get("D") or {}
    code = error.get("code", error.get("Code")) if isinstance(error, dict) else None
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError, OverflowError):
        return None


# How much of a remote error's text reaches users (API answers, run history): the MLS is
# someone else's server, and what it says may be long, binary or a page of another service.
REMOTE_TEXT_LIMIT = 200


def odata_message(response: httpx.Response) -> str:
    """The vendor's code and message from an OData error body, as a short plain-text summary
    after a colon (nothing when the body has none)."""
    try:
        error = response.json().get("error", {})
        message = error.get("message") if isinstance(error, dict) else None
    except (ValueError, AttributeError, RecursionError):
        return ""
    code = vendor_code(response)
    text = remote_text(message) if isinstance(message, str) else ""
    parts = [f"code {code}" if code is not None else "", text]
    said = " ".join(p for p in parts if p)
    return f": {said}" if said else ""


def remote_text(text: str, limit: int = REMOTE_TEXT_LIMIT) -> str:
    """The first `limit` printable characters of what a remote server said, whitespace
    collapsed; longer text ends with an ellipsis."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    collapsed = " ".join(printable.split())
    return collapsed if len(collapsed) <= limit else collapsed[:limit].rstrip() + "…"
