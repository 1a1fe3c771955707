"""A RESO Web API client: asks `/Property` for the status of listings, a batch at a time.

The wire format is OData v4 as the RESO Web API Core specification uses it: `$filter`,
`$select`, `$top`, a JSON body with `value` and `@odata.nextLink` for server-driven paging, and
`Authorization: Bearer <token>`. 401 and 403 mean the credential is no longer accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from aiolimiter import AsyncLimiter

from mls_sync.mls.errors import NETWORK_TIMEOUT, MlsAuthError, MlsPayloadError, MlsRequestError

SELECT_FIELDS = ("ListingKey", "ListingId", "StandardStatus", "ModificationTimestamp")


@dataclass(frozen=True)
class MlsRecord:
    listing_key: str
    listing_id: str | None
    standard_status: object  # raw wire value; the domain mapping judges it
    modification_timestamp: datetime | None


class MlsClient(Protocol):
    """What the engine needs from an MLS."""

    batch_size: int
    key_field: str

    async def fetch_by_keys(self, keys: Sequence[str]) -> dict[str, MlsRecord]:
        """Records for at most `batch_size` keys, by the value of `key_field`; absent keys are
        not in the MLS."""
        ...


class ResoClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        token: str,
        key_field: str = "ListingKey",
        filter_style: str = "in",
        batch_size: int = 50,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        if key_field not in ("ListingKey", "ListingId"):
            raise ValueError("key_field must be ListingKey or ListingId")
        if filter_style not in ("in", "or"):
            raise ValueError("filter_style must be 'in' or 'or'")
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._token = token
        self.key_field = key_field
        self._filter_style = filter_style
        self.batch_size = batch_size
        self._limiter = limiter
        self.requests_made = 0

    def key_filter(self, keys: Sequence[str]) -> str:
        quoted = [odata_string(k) for k in keys]
        if self._filter_style == "in":
            return f"{self.key_field} in ({','.join(quoted)})"
        return " or ".join(f"{self.key_field} eq {q}" for q in quoted)

    async def fetch_by_keys(self, keys: Sequence[str]) -> dict[str, MlsRecord]:
        if not keys:
            return {}
        if len(keys) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} keys a request, got {len(keys)}")
        params = {
            "$filter": self.key_filter(keys),
            "$select": ",".join(SELECT_FIELDS),
            "$top": str(len(keys)),
        }
        records: dict[str, MlsRecord] = {}
        url: str | None = f"{self._base_url}/Property"
        query: dict[str, str] | None = params
        while url is not None:
            body = await self._get_json(url, query)
            for raw in _values(body):
                record = _parse_record(raw)
                lookup = record.listing_key if self.key_field == "ListingKey" else record.listing_id
                if lookup is not None:
                    records[lookup] = record
            url, query = self._next_link(body), None
        return records

    async def _get_json(self, url: str, params: dict[str, str] | None) -> Any:
        if self._limiter is not None:
            await self._limiter.acquire()
        self.requests_made += 1
        try:
            response = await self._http.get(
                url,
                params=params,
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
            )
        except httpx.TimeoutException:
            raise MlsRequestError(NETWORK_TIMEOUT) from None
        except httpx.TransportError as exc:
            raise MlsRequestError(f"Network error: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise MlsAuthError(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise MlsRequestError(
                f"MLS error: HTTP {response.status_code}{_odata_message(response)}",
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        try:
            return response.json()
        except ValueError:
            raise MlsPayloadError("body is not JSON") from None

    def _next_link(self, body: dict[str, Any]) -> str | None:
        link = body.get("@odata.nextLink")
        if link is None:
            return None
        if not isinstance(link, str):
            raise MlsPayloadError("@odata.nextLink is not a URL")
        # Never send the bearer token to a host other than the MLS's own.
        if urlsplit(link).netloc != urlsplit(self._base_url).netloc:
            raise MlsPayloadError("@odata.nextLink points at another host")
        return link


def odata_string(value: str) -> str:
    """An OData string literal: single quotes, with embedded quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def _values(body: Any) -> list[Any]:
    if not isinstance(body, dict) or "value" not in body:
        raise MlsPayloadError("no 'value' array")
    values = body["value"]
    if not isinstance(values, list):
        raise MlsPayloadError("'value' is not an array")
    return values


def _parse_record(raw: Any) -> MlsRecord:
    if not isinstance(raw, dict):
        raise MlsPayloadError("a record is not an object")
    key = raw.get("ListingKey")
    listing_id = raw.get("ListingId")
    if not isinstance(key, str) or not key:
        raise MlsPayloadError("a record has no ListingKey")
    return MlsRecord(
        listing_key=key,
        listing_id=listing_id if isinstance(listing_id, str) else None,
        standard_status=raw.get("StandardStatus"),
        modification_timestamp=_parse_timestamp(raw.get("ModificationTimestamp")),
    )


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _odata_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        message = error.get("message") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        return ""
    return f": {message}" if isinstance(message, str) and message else ""
