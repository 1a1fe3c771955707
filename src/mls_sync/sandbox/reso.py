"""A local RESO Web API server (OData v4 JSON) holding its own listings, with faults on demand.

The RESO base URL is the server root: `GET /` (service document), `GET /$metadata` (CSDL) and
`GET /Property` with `$filter`, `$select`, `$top`, `$skip`, `$orderby`, `$count` and
`@odata.nextLink` paging. Clients talk to it exactly as to an MLS vendor's server. Faults come
queued (`fail_next`) or at random (`chaos`: seeded 5xx, timeouts and 429 bursts). With
`entity_events=True` it also serves the RESO EntityEvent log (sandbox/reso_events.py); key
lookups `GET /Property('KEY')` are always served.

State lives in `ResoSandbox` and is changed from the test's (or demo's) thread while uvicorn
serves from another one, so every access goes through one `threading.Lock`; sleeps (latency,
slow keys) happen outside it with `asyncio.sleep` so one slow request never blocks the others.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from mls_sync.sandbox.chaos import Chaos, ChaosFault
from mls_sync.sandbox.oauth import TokenIssuer
from mls_sync.sandbox.odata import (
    FieldType,
    ODataQueryError,
    Predicate,
    narrowing_of,
)
from mls_sync.sandbox.reso_events import EVENT_FIELDS, EVENT_ORDER, EventLog, parse_key_segment
from mls_sync.sandbox.reso_vendors import (
    Fault,
    as_label,
    bridge_version,
    check_filter,
    compression_required,
    quota_headers,
    rules_for,
)
from mls_sync.sandbox.reso_wire import (
    JSON_MEDIA_TYPE,
    MILLISECOND,
    ODATA_HEADERS,
    PROPERTY_FIELDS,
    QueryOptions,
    base_url_of,
    context_url,
    format_timestamp,
    max_page_size_preference,
    metadata_xml,
    odata_error,
    page_body,
    parse_query_options,
    project,
    utc_millis,
)


@dataclass
class SandboxListing:
    """One Property record as the MLS holds it."""

    listing_key: str
    listing_id: str
    standard_status: str
    modification_timestamp: datetime
    originating_system_name: str = "sandbox"
    list_price: int | None = None
    list_agent_mls_id: str | None = None
    list_office_mls_id: str | None = None
    mls_status: str | None = None

    def typed_record(self) -> dict[str, Any]:
        """RESO field names with Python values (datetimes stay datetimes) for filtering."""
        return {
            "ListingKey": self.listing_key,
            "ListingId": self.listing_id,
            "StandardStatus": self.standard_status,
            "MlsStatus": self.mls_status,
            "ModificationTimestamp": self.modification_timestamp,
            "OriginatingSystemName": self.originating_system_name,
            "ListPrice": self.list_price,
            "ListAgentMlsId": self.list_agent_mls_id,
            "ListOfficeMlsId": self.list_office_mls_id,
        }

    def to_record(self) -> dict[str, Any]:
        """The record as JSON carries it."""
        return project(self.typed_record(), None)


@dataclass(frozen=True)
class RecordedRequest:
    """One request to /Property, as the server saw it (headers have lower-case names)."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    token: str | None
    at: float = field(default_factory=time.monotonic)


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _quoted_key(key: str) -> str:
    # How a key appears in a $filter string literal; matching the quoted form keeps 'L1'
    # from matching a filter that only names 'L10'.
    return "'" + key.replace("'", "''") + "'"


class ResoSandbox:
    """The MLS: listings, tokens, fault injection, and the Starlette app that serves them."""

    def __init__(
        self,
        *,
        tokens: Iterable[str] = ("sandbox-token",),
        max_page_size: int = 200,
        latency: float = 0.0,
        entity_events: bool = False,
    ) -> None:
        if max_page_size < 1:
            raise ValueError("max_page_size must be at least 1")
        self.max_page_size = max_page_size
        self.latency = latency
        self.slow_keys: dict[str, float] = {}
        # Next answers, in order: an HTTP status (OData error body) or a Fault (any body).
        self.fail_next: list[int | Fault] = []
        self.requests: list[RecordedRequest] = []
        # Vendor behaviour (sandbox/reso_vendors.py) and limits, all settable by a test.
        self.vendor = "generic"
        self.supports_in = True
        self.status_labels = False  # send `Active Under Contract` instead of the enum name
        self.rate_limit: float | None = None  # requests per second per token, then 429
        # Going over `rate_limit` suspends the token for this long (every request answers 429
        # until then): MLS Grid's way, and its mode's default (an hour). None: a plain 429.
        self.suspension_seconds: float | None = None
        # Called after each Property page is answered: a test changes records while a client
        # pages (the MLS does not stand still between two requests).
        self.on_page: Callable[[], None] | None = None
        self._suspended: dict[str | None, float] = {}  # token -> monotonic end
        self.quota_headers: dict[str, str] = {}  # sent with every answer (Trestle, Bridge)
        # Seeded random 5xx, timeouts and 429 bursts on every data request (sandbox/chaos.py).
        self.chaos: Chaos | None = None
        self.oauth = TokenIssuer()
        self._hidden: set[str] = set()  # MLS Grid: MlgCanView false
        # Bridge: changes Bridge made itself (BridgeModificationTimestamp moves, the MLS's
        # ModificationTimestamp does not).
        self._vendor_stamps: dict[str, datetime] = {}
        # Requests a token may make in an hour (Bridge, Trestle): the quota headers count it
        # down and, once spent, every request answers 429 until the hour renews.
        self.hourly_quota: int | None = None
        self._hour: dict[str | None, list[float]] = {}
        self._recent: dict[str | None, list[float]] = {}
        self._tokens = set(tokens)
        self._listings: dict[str, SandboxListing] = {}
        self._max_timestamp: datetime | None = None
        # (ModificationTimestamp, ListingKey) in order, rebuilt after any timestamp moves:
        # replication queries (`ModificationTimestamp ge ...`) bisect it instead of scanning.
        self._by_timestamp: list[tuple[datetime, str]] | None = None
        # RCP-027: every change is logged; the log is served only when `entity_events` is on.
        self.entity_events = entity_events
        self._events = EventLog()
        self._lock = threading.Lock()
        data_routes = [
            Route("/", self._service_document, methods=["GET"]),
            Route("/$metadata", self._metadata, methods=["GET"]),
            Route("/Property", self._property, methods=["GET"]),
            Route("/Property({key:path})", self._property_by_key, methods=["GET"]),
            Route("/EntityEvent", self._entity_event, methods=["GET"]),
        ]
        self.app = Starlette(
            routes=[
                *data_routes,
                Route("/token", self.oauth.endpoint, methods=["POST"]),
                # Bridge's shape: /api/v2/OData/<dataset>/Property (or v3), same data.
                Mount("/api/{version}/OData/{dataset}", routes=data_routes),
            ]
        )

    # -- state ----------------------------------------------------------------------------------

    def add_listing(
        self, listing_key: str, listing_id: str, status: str, **fields: Any
    ) -> SandboxListing:
        """Add (or replace) a listing. `fields` are SandboxListing's other attributes, e.g.
        list_price=500000 or modification_timestamp=...; the timestamp defaults to now."""
        with self._lock:
            stamp = fields.pop("modification_timestamp", None)
            stamp = self._bump_timestamp() if stamp is None else self._note_timestamp(stamp)
            listing = SandboxListing(listing_key, listing_id, status, stamp, **fields)
            self._listings[listing_key] = listing
            self._events.append(listing_key)
            return dataclasses.replace(listing)

    def set_status(self, listing_key: str, status: str) -> None:
        """Change StandardStatus and move ModificationTimestamp past every earlier one."""
        with self._lock:
            listing = self._get(listing_key)
            listing.standard_status = status
            listing.modification_timestamp = self._bump_timestamp()
            self._events.append(listing_key)

    def remove_listing(self, listing_key: str) -> None:
        """The MLS no longer has this listing: it is absent from every answer."""
        with self._lock:
            self._get(listing_key)
            del self._listings[listing_key]
            self._events.append(listing_key)

    def hide(self, listing_key: str) -> None:
        """MLS Grid: the record now carries `MlgCanView: false` (and a new timestamp)."""
        with self._lock:
            listing = self._get(listing_key)
            self._hidden.add(listing_key)
            listing.modification_timestamp = self._bump_timestamp()
            self._events.append(listing_key)

    def vendor_correction(self, listing_key: str, status: str) -> None:
        """Bridge corrects a record itself: StandardStatus and BridgeModificationTimestamp
        change, the MLS's ModificationTimestamp does not."""
        with self._lock:
            listing = self._get(listing_key)
            listing.standard_status = status
            self._vendor_stamps[listing_key] = self._bump_timestamp()  # now, Bridge's clock
            self._events.append(listing_key)

    def listing(self, listing_key: str) -> SandboxListing:
        """A copy of the listing (changing it does not change the server's state)."""
        with self._lock:
            return dataclasses.replace(self._get(listing_key))

    def all_listings(self) -> list[SandboxListing]:
        """Copies of every listing, in ListingKey order."""
        with self._lock:
            return [dataclasses.replace(self._listings[k]) for k in sorted(self._listings)]

    def entity_event_log(self) -> list[dict[str, Any]]:
        """Copies of every EntityEvent so far, oldest first."""
        with self._lock:
            return self._events.snapshot()

    def log_event(self, record_key: str, resource_name: str = "Property") -> int:
        """Append an event without changing a record (e.g. another resource's, or a Property
        event the MLS logs for a change we do not model); returns its sequence."""
        with self._lock:
            return self._events.append(record_key, resource_name)

    def _get(self, listing_key: str) -> SandboxListing:
        try:
            return self._listings[listing_key]
        except KeyError:
            raise KeyError(f"no sandbox listing with ListingKey {listing_key!r}") from None

    def _bump_timestamp(self) -> datetime:
        # Strictly increasing, so a replication client using `ge <last seen>` sees each change.
        now = utc_millis(datetime.now(UTC))
        if self._max_timestamp is not None and now <= self._max_timestamp:
            now = self._max_timestamp + MILLISECOND
        self._max_timestamp = now
        self._by_timestamp = None
        return now

    def _note_timestamp(self, stamp: datetime) -> datetime:
        stamp = utc_millis(stamp)
        if self._max_timestamp is None or stamp > self._max_timestamp:
            self._max_timestamp = stamp
        self._by_timestamp = None
        return stamp

    # -- auth -----------------------------------------------------------------------------------

    def add_token(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)

    def revoke_token(self, token: str) -> None:
        """From now on, requests with this token get 401."""
        with self._lock:
            self._tokens.discard(token)

    def _authorized(self, token: str | None) -> bool:
        with self._lock:
            if token is not None and token in self._tokens and rules_for(self.vendor).static_tokens:
                return True
        return self.oauth.valid(token)

    # -- observation ----------------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _record(self, request: Request, token: str | None) -> None:
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            params=dict(request.query_params),
            headers=dict(request.headers),
            token=token,
        )
        with self._lock:
            self.requests.append(recorded)

    def _delay_for(self, filter_text: str) -> float:
        with self._lock:
            slow = [d for key, d in self.slow_keys.items() if _quoted_key(key) in filter_text]
        return self.latency + max(slow, default=0.0)

    def _over_rate(self, token: str | None) -> bool:
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        with self._lock:
            if self._suspended.get(token, 0.0) > now:
                return True  # suspended: every request is refused, and keeps usage high
            recent = [t for t in self._recent.get(token, []) if t > now - 1.0]
            over = len(recent) >= self.rate_limit
            if not over:
                recent.append(now)
            self._recent[token] = recent
            rest = self._suspension()
            if over and rest is not None:
                self._suspended[token] = now + rest
            return over

    def _suspension(self) -> float | None:
        if self.suspension_seconds is not None:
            return self.suspension_seconds
        return 3600.0 if self.vendor == "mlsgrid" else None

    def suspended(self, token: str) -> bool:
        """Whether the token is suspended now (going over `rate_limit` in a suspending mode)."""
        with self._lock:
            return self._suspended.get(token, 0.0) > time.monotonic()

    def lift_suspensions(self) -> None:
        """The vendor's cool-down is over (a test's stand-in for the hour passing)."""
        with self._lock:
            self._suspended.clear()
            self._recent.clear()

    def _pop_failure(self) -> int | Fault | None:
        with self._lock:
            return self.fail_next.pop(0) if self.fail_next else None

    # -- HTTP -----------------------------------------------------------------------------------

    async def _property(self, request: Request) -> Response:
        refused = await self._gate(request, request.query_params.get("$filter", ""))
        if refused is not None:
            return refused
        try:
            check_filter(
                self.vendor, request.query_params.get("$filter"), supports_in=self.supports_in
            )
            self._check_paging(request)
            options = parse_query_options(request.query_params, self._fields())
        except ODataQueryError as exc:
            return odata_error(HTTPStatus.BAD_REQUEST, str(exc))
        body = self._answer(options, request)
        if self.on_page is not None:
            self.on_page()  # after the page is cut, before the client asks for the next
        return self._json(body, _bearer_token(request))

    def _check_paging(self, request: Request) -> None:
        """The vendor's paging rules: its largest $top (Bridge v3: $top is the collection,
        not capped here), and Spark's next links by $skiptoken only."""
        rules, params = rules_for(self.vendor), request.query_params
        top = params.get("$top", "")
        v3 = self.vendor == "bridge" and bridge_version(request.url.path) == 3
        if rules.top_cap and top.isdigit() and int(top) > rules.top_cap and not v3:
            raise ODataQueryError(f"$top must be at most {rules.top_cap}")
        if rules.skiptoken and "$skip" in params:
            raise ODataQueryError("$skip is not supported: follow @odata.nextLink ($skiptoken)")

    async def _property_by_key(self, request: Request) -> Response:
        """`/Property('KEY')`: the single entity (OData key syntax), or 404 when absent."""
        segment = request.path_params["key"]
        refused = await self._gate(request, segment)
        if refused is not None:
            return refused
        key = parse_key_segment(segment)
        try:
            if key is None:
                raise ODataQueryError(f"not a key literal: {segment!r}")
            options = parse_query_options(request.query_params, self._fields())
            if set(request.query_params) - {"$select", "$format"}:
                raise ODataQueryError("only $select applies to a single entity")
        except ODataQueryError as exc:
            return odata_error(HTTPStatus.BAD_REQUEST, str(exc))
        with self._lock:
            listing = self._listings.get(key)
            record = None if listing is None else self._wire_record(listing)
        if record is None:
            return odata_error(HTTPStatus.NOT_FOUND, f"No Property with ListingKey {key!r}")
        context = context_url(request, options.select).replace("#Property", "#Property/$entity")
        return self._json({"@odata.context": context, **project(record, options.select)})

    async def _entity_event(self, request: Request) -> Response:
        """The RCP-027 log: `$filter` on its fields (e.g. `EntityEventSequence gt N`),
        `$orderby`, `$top`, `$skip`, paging with `@odata.nextLink`."""
        if not self.entity_events:
            return odata_error(HTTPStatus.NOT_FOUND, "Resource not found: EntityEvent")
        refused = await self._gate(request, "")
        if refused is not None:
            return refused
        try:
            options = parse_query_options(request.query_params, EVENT_FIELDS)
        except ODataQueryError as exc:
            return odata_error(HTTPStatus.BAD_REQUEST, str(exc))
        with self._lock:
            events = self._events.snapshot()
        body = page_body(events, options, request, self.max_page_size, "EntityEvent", EVENT_ORDER)
        return self._json(body)

    def _json(self, body: dict[str, Any], token: str | None = None) -> JSONResponse:
        headers = {**ODATA_HEADERS, **self.quota_headers, **self._quota_left(token)}
        return JSONResponse(body, headers=headers, media_type=JSON_MEDIA_TYPE)

    async def _gate(self, request: Request, slow_text: str) -> Response | None:
        """What every data request goes through first: recording, latency, injected faults,
        vendor compression, auth and the rate limit. A response means the request stops."""
        token = _bearer_token(request)
        self._record(request, token)
        delay = self._delay_for(slow_text)
        if delay > 0:
            await asyncio.sleep(delay)
        failure = self._pop_failure()
        if isinstance(failure, Fault):
            await asyncio.sleep(failure.delay)
            injected = failure.response()
            if injected is not None:
                return injected
            return odata_error(
                failure.status, f"Injected failure: HTTP {failure.status}", headers=failure.headers
            )
        if failure is not None:
            return odata_error(failure, f"Injected failure: HTTP {failure}")
        if self.chaos is not None:
            chaotic = await _chaos_answer(self.chaos, token)
            if chaotic is not None:
                return chaotic
        if compression_required(self.vendor, request.headers.get("accept-encoding", "")):
            return odata_error(HTTPStatus.BAD_REQUEST, "COMPRESSION REQUIRED")
        if not self._authorized(token):
            return self._unauthorized(token)
        if self._over_rate(token):
            code = rules_for(self.vendor).rate_limit_code
            return odata_error(
                HTTPStatus.TOO_MANY_REQUESTS,
                "Rate limit",
                code=str(code) if code else None,
                headers={"Retry-After": "1"},
            )
        if self._quota_spent(token):
            return odata_error(
                HTTPStatus.TOO_MANY_REQUESTS, "Quota exceeded", headers=self._quota_left(token)
            )
        return None

    def _unauthorized(self, token: str | None) -> JSONResponse:
        code = rules_for(self.vendor).auth_error_code
        if code is None or token is None:
            return _unauthorized(token)
        return odata_error(HTTPStatus.UNAUTHORIZED, "Session token expired", code=str(code))

    def _quota_spent(self, token: str | None) -> bool:
        """Count this request against the token's hour; True when the hour's quota is gone."""
        if self.hourly_quota is None:
            return False
        now = time.monotonic()
        with self._lock:
            sent = [t for t in self._hour.get(token, []) if t > now - 3600.0]
            spent = len(sent) >= self.hourly_quota
            if not spent:
                sent.append(now)
            self._hour[token] = sent
            return spent

    def _quota_left(self, token: str | None) -> dict[str, str]:
        family = rules_for(self.vendor).quota_family
        if self.hourly_quota is None or family is None:
            return {}
        now = time.monotonic()
        with self._lock:
            sent = [t for t in self._hour.get(token, []) if t > now - 3600.0]
        reset = int(sent[0] + 3600.0 - now) + 1 if sent else 3600
        left = max(self.hourly_quota - len(sent), 0)
        return quota_headers(family, self.hourly_quota, left, reset)

    def _fields(self) -> dict[str, FieldType]:
        if self.vendor == "mlsgrid":
            return {**PROPERTY_FIELDS, "MlgCanView": FieldType.STRING}
        if self.vendor == "bridge":
            return {**PROPERTY_FIELDS, "BridgeModificationTimestamp": FieldType.DATETIME}
        return PROPERTY_FIELDS

    def _wire_record(self, listing: SandboxListing) -> dict[str, Any]:
        record = listing.typed_record()
        if self.status_labels:
            record["StandardStatus"] = as_label(record["StandardStatus"])
        if self.vendor == "mlsgrid":
            record["MlgCanView"] = listing.listing_key not in self._hidden
        if self.vendor == "bridge":
            own = self._vendor_stamps.get(listing.listing_key)
            stamp = listing.modification_timestamp
            record["BridgeModificationTimestamp"] = max(stamp, own) if own else stamp
        return record

    def _answer(self, options: QueryOptions, request: Request) -> dict[str, Any]:
        with self._lock:
            candidates = self._candidates(options.predicate)
            records = [self._wire_record(listing) for listing in candidates]
        # MLS Grid: $top is the page size (default 500, at most 5000) and nextLink pages on
        # (docs.mlsgrid.com, API v2 "Paging"); so on Bridge v2 (default 10); on Bridge v3 the
        # page size is `Prefer: odata.maxpagesize`; elsewhere $top caps the whole answer.
        page_size, top_is_page_size = self.max_page_size, self.vendor == "mlsgrid"
        if self.vendor == "bridge":
            if bridge_version(request.url.path) == 3:
                prefer = max_page_size_preference(request.headers.get("prefer", ""))
                page_size = min(prefer or page_size, page_size)
            else:
                top_is_page_size = True
                page_size = min(options.top or 10, page_size)
        return page_body(
            records,
            options,
            request,
            page_size,
            top_is_page_size=top_is_page_size,
            skiptoken=rules_for(self.vendor).skiptoken,
        )

    def _candidates(self, predicate: Predicate | None) -> Iterable[SandboxListing]:
        """The listings a filter can match, looked up by key or by timestamp where the filter
        pins those down (as an MLS's indexes do), so a 50-key query or an idle replication
        query does not scan 10,000 listings; the filter still tests every candidate."""
        if predicate is None:
            return self._listings.values()
        narrowing = narrowing_of(predicate)
        keys = narrowing.values.get("ListingKey")
        if keys is not None:
            return [self._listings[key] for key in keys if key in self._listings]
        since = narrowing.at_least.get("ModificationTimestamp")
        if since is None:
            return self._listings.values()
        if self._by_timestamp is None:
            self._by_timestamp = sorted(
                (listing.modification_timestamp, key) for key, listing in self._listings.items()
            )
        start = bisect.bisect_left(self._by_timestamp, (since, ""))
        found = (self._listings.get(key) for _, key in self._by_timestamp[start:])
        return [listing for listing in found if listing is not None]

    async def _metadata(self, request: Request) -> Response:
        # Real RESO servers guard $metadata and the service document like the data.
        token = _bearer_token(request)
        if not self._authorized(token):
            return _unauthorized(token)
        return Response(metadata_xml(), media_type="application/xml", headers=ODATA_HEADERS)

    async def _service_document(self, request: Request) -> Response:
        token = _bearer_token(request)
        if not self._authorized(token):
            return _unauthorized(token)
        sets = ["Property", "EntityEvent"] if self.entity_events else ["Property"]
        body = {
            "@odata.context": base_url_of(request) + "/$metadata",
            "value": [{"name": name, "kind": "EntitySet", "url": name} for name in sets],
        }
        return JSONResponse(body, headers=ODATA_HEADERS, media_type=JSON_MEDIA_TYPE)


async def _chaos_answer(chaos: Chaos, token: str | None) -> Response | None:
    """The random fault this request draws: an answer, a delay (then the normal answer, which
    the client has stopped waiting for), or None."""
    fault = chaos.draw(token or "")
    if fault is ChaosFault.SERVER_ERROR:
        return odata_error(HTTPStatus.SERVICE_UNAVAILABLE, "Injected chaos: try again later")
    if fault is ChaosFault.TIMEOUT:
        await asyncio.sleep(chaos.timeout_seconds)
    elif fault is ChaosFault.RATE_LIMITED:
        return odata_error(
            HTTPStatus.TOO_MANY_REQUESTS,
            "Rate limit",
            headers={"Retry-After": str(chaos.retry_after_seconds)},
        )
    return None


def _unauthorized(token: str | None) -> JSONResponse:
    message = "Missing bearer token" if token is None else "Invalid or expired bearer token"
    return odata_error(HTTPStatus.UNAUTHORIZED, message, code="Unauthorized")


__all__ = [
    "PROPERTY_FIELDS",
    "RecordedRequest",
    "ResoSandbox",
    "SandboxListing",
    "format_timestamp",
    "metadata_xml",
    "odata_error",
]
