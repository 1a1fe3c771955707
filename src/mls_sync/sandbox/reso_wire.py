"""The sandbox MLS's OData wire: the Property fields it serves, query options parsed and
checked, error bodies, pages with their next links ($skip, or Spark's $skiptoken) and the
CSDL metadata. sandbox/reso.py holds the server's state and routes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse

from mls_sync.sandbox.odata import (
    FieldType,
    ODataQueryError,
    Predicate,
    Record,
    order_records,
    parse_filter,
    parse_orderby,
    parse_select,
)

# The Property fields the sandbox serves, with their EDM types (used by $filter and $metadata).
PROPERTY_FIELDS: dict[str, FieldType] = {
    "ListingKey": FieldType.STRING,
    "ListingId": FieldType.STRING,
    "StandardStatus": FieldType.STRING,
    "MlsStatus": FieldType.STRING,
    "ModificationTimestamp": FieldType.DATETIME,
    "OriginatingSystemName": FieldType.STRING,
    "ListPrice": FieldType.NUMBER,
    "ListAgentMlsId": FieldType.STRING,
    "ListOfficeMlsId": FieldType.STRING,
}
# Left out of whole records while empty, as MLS Grid leaves out null fields; $select still
# names them explicitly (as null).
OMITTED_WHEN_NULL = frozenset({"ListAgentMlsId", "ListOfficeMlsId", "MlsStatus"})
DEFAULT_ORDER: list[tuple[str, bool]] = [("ListingKey", False)]
ODATA_HEADERS = {"OData-Version": "4.0"}
JSON_MEDIA_TYPE = "application/json;odata.metadata=minimal"
# Query options we implement; any other system ($-prefixed) option is a 400, as on a strict server.
SUPPORTED_OPTIONS = {
    "$filter",
    "$select",
    "$top",
    "$skip",
    "$skiptoken",
    "$orderby",
    "$count",
    "$format",
}
MILLISECOND = timedelta(milliseconds=1)


def utc_millis(moment: datetime) -> datetime:
    """Aware UTC, truncated to the millisecond the wire carries, so a bookmark read from a
    record compares equal to the stored value."""
    if moment.tzinfo is None:
        raise ValueError("modification_timestamp must be timezone-aware")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 with milliseconds and `Z`, as RESO servers send DateTimeOffset values."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def wire_value(value: Any) -> Any:
    return format_timestamp(value) if isinstance(value, datetime) else value


@dataclass(frozen=True)
class QueryOptions:
    predicate: Predicate | None
    select: list[str] | None
    orderby: list[tuple[str, bool]]
    top: int | None
    skip: int
    count: bool


def odata_error(
    status: int, message: str, *, code: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An OData v4 JSON error body: {"error": {"code", "message"}}."""
    code = code or HTTPStatus(status).phrase.replace(" ", "")
    body = {"error": {"code": code, "message": message}}
    all_headers = {**ODATA_HEADERS, **(headers or {})}
    if status == HTTPStatus.UNAUTHORIZED:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, headers=all_headers)


def _non_negative_int(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise ODataQueryError(f"{name} must be a non-negative integer, not {raw!r}")
    return int(raw)


def _parse_count(params: Mapping[str, str]) -> bool:
    raw = params.get("$count", "false")
    if raw not in ("true", "false"):
        raise ODataQueryError(f"$count must be true or false, not {raw!r}")
    return raw == "true"


def parse_query_options(
    params: Mapping[str, str], fields: Mapping[str, FieldType] = PROPERTY_FIELDS
) -> QueryOptions:
    """Validate every query option up front, so a bad one is a 400 and never a partial answer."""
    unsupported = sorted(k for k in params if k.startswith("$") and k not in SUPPORTED_OPTIONS)
    if unsupported:
        raise ODataQueryError(f"unsupported query option {unsupported[0]}")
    if params.get("$format", "json") not in ("json", "application/json"):
        raise ODataQueryError("$format: only json is supported")
    filter_text = params.get("$filter")
    select_text = params.get("$select")
    orderby_text = params.get("$orderby")
    return QueryOptions(
        predicate=parse_filter(filter_text, fields) if filter_text is not None else None,
        select=parse_select(select_text, fields) if select_text is not None else None,
        orderby=parse_orderby(orderby_text, fields) if orderby_text else [],
        top=_non_negative_int(params, "$top"),
        skip=_non_negative_int(params, "$skip") or _skiptoken_offset(params) or 0,
        count=_parse_count(params),
    )


def _skiptoken_offset(params: Mapping[str, str]) -> int | None:
    """The sandbox's `$skiptoken` (Spark's next links): an opaque token, here the offset."""
    raw = params.get("$skiptoken")
    if raw is None:
        return None
    if not raw.startswith("o") or not raw[1:].isdigit():
        raise ODataQueryError("$skiptoken is not one this server issued")
    return int(raw[1:])


def base_url_of(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def context_url(request: Request, select: list[str] | None, entity_set: str = "Property") -> str:
    # OData names the projected fields in the context URL when $select is used.
    suffix = f"({','.join(select)})" if select is not None else ""
    return f"{base_url_of(request)}/$metadata#{entity_set}{suffix}"


def max_page_size_preference(prefer: str) -> int | None:
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize" and value.strip().isdigit():
            return max(int(value.strip()), 1)
    return None


def page_body(
    records: Sequence[Record],
    options: QueryOptions,
    request: Request,
    max_page_size: int,
    entity_set: str = "Property",
    default_order: list[tuple[str, bool]] = DEFAULT_ORDER,
    *,
    top_is_page_size: bool = False,
    skiptoken: bool = False,
) -> dict[str, Any]:
    """One page of a collection: filtered, ordered, windowed by $skip/$top, at most
    `max_page_size` records, and a nextLink when more of the window remains. With
    `top_is_page_size` (MLS Grid), $top sizes each page and the answer goes on past it."""
    matched = [r for r in records if options.predicate is None or options.predicate(r)]
    ordered = order_records(matched, options.orderby + default_order)
    if top_is_page_size:
        window = ordered[options.skip :]
        page = window[: min(options.top or max_page_size, max_page_size)]
    else:
        end = None if options.top is None else options.skip + options.top
        window = ordered[options.skip : end]
        page = window[:max_page_size]
    body: dict[str, Any] = {"@odata.context": context_url(request, options.select, entity_set)}
    if options.count:
        body["@odata.count"] = len(matched)
    body["value"] = [project(record, options.select) for record in page]
    if len(window) > len(page):
        body["@odata.nextLink"] = _next_link(
            request, options, len(page), keep_top=top_is_page_size, skiptoken=skiptoken
        )
    return body


def project(record: Record, select: list[str] | None) -> dict[str, Any]:
    if select is None:
        names = [n for n in record if not (n in OMITTED_WHEN_NULL and record[n] is None)]
    else:
        names = select
    return {name: wire_value(record[name]) for name in names}


def _next_link(
    request: Request,
    options: QueryOptions,
    served: int,
    *,
    keep_top: bool = False,
    skiptoken: bool = False,
) -> str:
    """The same query, advanced past this page; $top shrinks so the client's total cap holds
    (or stays: `keep_top`, where it is the page size)."""
    params = dict(request.query_params)
    if skiptoken:
        params.pop("$skip", None)
        params["$skiptoken"] = f"o{options.skip + served}"
    else:
        params["$skip"] = str(options.skip + served)
    if options.top is not None and not keep_top:
        params["$top"] = str(options.top - served)
    # quote (not quote_plus): OData servers and clients expect %20, and '+' means a literal plus.
    query = urlencode(params, safe="$,()':", quote_via=quote)
    return f"{base_url_of(request)}{request.url.path}?{query}"


_EDM_ATTRIBUTES: dict[FieldType, str] = {
    FieldType.STRING: 'Type="Edm.String"',
    FieldType.NUMBER: 'Type="Edm.Decimal" Precision="14" Scale="2"',
    FieldType.DATETIME: 'Type="Edm.DateTimeOffset" Precision="27"',
}


def metadata_xml(fields: Mapping[str, FieldType] = PROPERTY_FIELDS) -> str:
    """A minimal CSDL document: the Property entity type, keyed by ListingKey."""
    properties = "\n".join(
        f'        <Property Name="{name}" {_EDM_ATTRIBUTES[kind]}/>'
        for name, kind in fields.items()
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="org.reso.metadata">
      <EntityType Name="Property">
        <Key><PropertyRef Name="ListingKey"/></Key>
{properties}
      </EntityType>
      <EntityContainer Name="RESOService">
        <EntitySet Name="Property" EntityType="org.reso.metadata.Property"/>
      </EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
"""
