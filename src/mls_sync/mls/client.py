"""A RESO Web API client: asks `/Property` for the status of listings, a batch at a time.

The wire format is OData v4 as the RESO Web API Core specification uses it: `$filter`,
`$select`, `$top`, a JSON body with `value` and `@odata.nextLink` for server-driven paging, and
`Authorization: Bearer <token>`. 401 and 403 mean the credential is no longer accepted.
Where a server offers RESO EntityEvent (RCP-027, see mls/entity_events.py), the client also
reads the event log and fetches changed Properties by key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import httpx
from aiolimiter import AsyncLimiter

from mls_sync.mls.auth import StaticBearer
from mls_sync.mls.entity_events import PROPERTY, EventPage, event_page
from mls_sync.mls.errors import MlsFilterRefused, MlsPayloadError, MlsRequestError
from mls_sync.mls.profiles import PROFILES, VendorProfile
from mls_sync.mls.transport import MlsTransport, odata_message

SELECT_FIELDS = (
    "ListingKey",
    "ListingId",
    "StandardStatus",
    "MlsStatus",
    "ModificationTimestamp",
    "ListAgentMlsId",
    "ListOfficeMlsId",
)
# A reconciliation's key-only pull: which records the feed still has, and since when.
KEY_FIELDS = ("ListingKey", "ListingId", "ModificationTimestamp")
# Fields `search` may filter on: a listing's keys, and its listing agent or office.


@dataclass(frozen=True)
class MlsRecord:
    listing_key: str
    listing_id: str | None
    standard_status: object  # raw wire value; the domain mapping judges it
    modification_timestamp: datetime | None
    gone: bool = False  # the MLS says the record left the feed (MLS Grid: MlgCanView false)
    mls_status: str | None = None  # the MLS's local status name
    list_agent_mls_id: str | None = None
    list_office_mls_id: str | None = None


class MlsClient(Protocol):
    """What the engine needs from an MLS."""

    batch_size: int
    key_field: str

    async def fetch_by_keys(self, keys: Sequence[str]) -> dict[str, MlsRecord]:
        """Records for at most `batch_size` keys, by the value of `key_field`; absent keys are
        not in the MLS."""
        ...


class ResoClient:
    """`transport` carries auth, budget and retries; without one, `token` (and `limiter`) make
    a plain bearer transport. `profile` says how this vendor wants to be asked."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        token: str | None = None,
        key_field: str = "ListingKey",
        filter_style: str = "in",
        batch_size: int = 50,
        limiter: AsyncLimiter | None = None,
        transport: MlsTransport | None = None,
        profile: VendorProfile | None = None,
    ) -> None:
        if key_field not in ("ListingKey", "ListingId"):
            raise ValueError("key_field must be ListingKey or ListingId")
        if filter_style not in ("in", "or"):
            raise ValueError("filter_style must be 'in' or 'or'")
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._profile = profile or PROFILES["generic"]
        if transport is None:
            if token is None:
                raise ValueError("a token or a transport is needed")
            transport = MlsTransport(
                http, StaticBearer(token, base_url=base_url), profile=self._profile
            )
            self._limiter = limiter
        else:
            self._limiter = None
        self._transport = transport
        self.key_field = key_field
        # Learned per feed: "in" until the server answers 400 to it, then "or".
        self.filter_style = filter_style
        self.batch_size = batch_size

    @property
    def requests_made(self) -> int:
        return self._transport.requests_made

    @property
    def profile(self) -> VendorProfile:
        return self._profile

    def key_filter(self, keys: Sequence[str], field: str | None = None) -> str:
        field = field or self.key_field
        self._filterable(field)
        quoted = [odata_string(k) for k in keys]
        if self.filter_style == "in":
            return self._scoped(f"{field} in ({','.join(quoted)})")
        chain = " or ".join(f"{field} eq {q}" for q in quoted)
        return self._scoped(f"({chain})" if self._profile.require_originating_system else chain)

    def _filterable(self, field: str) -> None:
        """Raises MlsFilterRefused for a field the vendor refuses to filter on (MLS Grid:
        ListingKey, ListAgentMlsId), before anything is sent."""
        allowed = self._profile.filterable_fields
        if allowed and field not in allowed:
            raise MlsFilterRefused(self._profile.name, field, allowed)

    def _scoped(self, expression: str) -> str:
        """MLS Grid: every request filters on exactly one OriginatingSystemName."""
        if not self._profile.require_originating_system:
            return expression
        system = odata_string(self._profile.originating_system_name or "")
        return f"OriginatingSystemName eq {system} and {expression}"

    def _chunks(self, keys: Sequence[str]) -> list[Sequence[str]]:
        """One request's keys: all of them, or as many as the vendor's `or` cap allows."""
        cap = self._profile.max_or_operators
        if self.filter_style == "in" or cap is None:
            return [keys]
        size = cap + 1  # n terms need n - 1 `or`s
        return [keys[i : i + size] for i in range(0, len(keys), size)]

    def _select(self) -> str:
        return ",".join(SELECT_FIELDS + self._stamp_select() + self._profile.extra_select)

    def _stamp_select(self) -> tuple[str, ...]:
        stamp = self._profile.timestamp_field
        return () if stamp == "ModificationTimestamp" else (stamp,)

    def _record(self, raw: Any) -> MlsRecord:
        return _parse_record(raw, self._profile.timestamp_field)

    async def fetch_by_keys(self, keys: Sequence[str]) -> dict[str, MlsRecord]:
        if not keys:
            return {}
        if len(keys) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} keys a request, got {len(keys)}")
        return await self._fetch_with_fallback(keys, self.key_field)

    async def _fetch_with_fallback(self, keys: Sequence[str], field: str) -> dict[str, MlsRecord]:
        try:
            return await self._fetch_chunks(keys, field)
        except MlsRequestError as exc:
            # Servers without OData 4.01 answer `in` with 400: fall back to `or` chains once,
            # and remember it (the engine stores `filter_style` on the connection).
            if exc.status != 400 or self.filter_style != "in":
                raise
            self.filter_style = "or"
            return await self._fetch_chunks(keys, field)

    async def _fetch_chunks(self, keys: Sequence[str], field: str) -> dict[str, MlsRecord]:
        records: dict[str, MlsRecord] = {}
        for chunk in self._chunks(keys):
            params = {"$filter": self.key_filter(chunk, field), "$select": self._select()}
            params.update(self._top(len(chunk)))
            async for page in self._pages(params):
                for record in page:
                    lookup = record.listing_key if field == "ListingKey" else record.listing_id
                    if lookup is None:
                        continue
                    seen = records.get(lookup)
                    if seen is not None and _says(seen) != _says(record):
                        # Two answers for one listing: neither is trusted over the other.
                        raise MlsPayloadError(f"{field} {lookup!r} comes twice, differently")
                    records[lookup] = record
        return records

    # RESO EntityEvent (RCP-027)

    async def fetch_entity_events(self, after_sequence: int) -> AsyncIterator[EventPage]:
        """Pages of the event log after `after_sequence`, oldest first, following
        @odata.nextLink. Each page keeps only Property events but reports the newest sequence
        it held, so a run of other resources' events still moves the reader forward."""
        expression = f"EntityEventSequence gt {int(after_sequence)}"
        if self._profile.entity_event_resource_filter:
            expression += f" and ResourceName eq {odata_string(PROPERTY)}"
        params = {"$filter": expression, "$orderby": "EntityEventSequence asc"}
        if self._profile.page_size_via == "top" and self._profile.page_size:
            params["$top"] = str(self._page_size())
        async for body in self._bodies(f"{self._base_url}/EntityEvent", params):
            yield event_page(_values(body))

    async def latest_entity_event_sequence(self) -> int:
        """The newest sequence in the log now (0 for an empty log: sequences are positive).
        A feed's load reads it before it starts, so replication resumes from there."""
        params = {"$orderby": "EntityEventSequence desc", "$top": "1"}
        body = await self._get_json(f"{self._base_url}/EntityEvent", params)
        return event_page(_values(body)).last_sequence or 0

    async def fetch_properties(self, listing_keys: Sequence[str]) -> dict[str, MlsRecord]:
        """The current records of these Properties by ListingKey; a key absent from the
        answer is no longer in the MLS (or no longer visible to us)."""
        if self._profile.entity_event_lookup == "key":
            records: dict[str, MlsRecord] = {}
            for key in listing_keys:
                record = await self.fetch_property(key)
                if record is not None:
                    records[key] = record
            return records
        found: dict[str, MlsRecord] = {}
        for i in range(0, len(listing_keys), self.batch_size):
            chunk = listing_keys[i : i + self.batch_size]
            found.update(await self._fetch_with_fallback(chunk, "ListingKey"))
        return found

    async def fetch_property(self, listing_key: str) -> MlsRecord | None:
        """`GET /Property('KEY')` (OData key syntax: a quoted string literal, percent-encoded
        in the path); None when the MLS answers 404, which RCP-027 defines as gone."""
        path = quote(odata_string(listing_key), safe="'")
        url = f"{self._base_url}/Property({path})"
        if self._limiter is not None:
            await self._limiter.acquire()
        response = await self._transport.get(url, {"$select": self._select()})
        if response.status_code == 404:
            return None
        try:
            body = response.json()
        except ValueError:
            raise MlsPayloadError("body is not JSON") from None
        record = self._record(body)
        if record.listing_key != listing_key:
            raise MlsPayloadError("the MLS answered with another Property")
        return record

    async def fetch_changes_since(self, since: datetime | None) -> AsyncIterator[list[MlsRecord]]:
        """Pages of records with `ModificationTimestamp ge since` (every record, for a first
        load: `since` None), oldest first, in the largest pages the vendor allows, following
        @odata.nextLink (server-driven paging keeps records that share a timestamp in one
        stable order across pages)."""
        if self._profile.paging == "keyset":
            async for page in self._keyset_pages(since):
                yield page
            return
        field = self._profile.timestamp_field
        expression = f"{field} ge " + _stamp(since or _EPOCH)
        params = {
            "$filter": self._scoped(expression),
            "$orderby": f"{field} asc",
            "$select": self._select(),
        }
        params.update(self._largest_page())
        if self._profile.paging == "restart":
            pages = self._restarting_pages(params)
        else:
            pages = self._pages(params)
        async for page in pages:
            yield page

    async def _restarting_pages(self, params: dict[str, str]) -> AsyncIterator[list[MlsRecord]]:
        """Pages for a server that offers only next links (offsets, on most): each page after
        the first asks again from the newest timestamp read (`ge`), dropping the records
        already read at that instant, so a record that changes while we page (and moves
        behind us) never shifts an unread one past a page boundary. A page whose records all
        share one instant would come back the same: its next link is followed instead."""
        url, field = f"{self._base_url}/Property", self._profile.timestamp_field
        last: datetime | None = None
        read_at_last: set[str] = set()
        link: str | None = None
        while True:
            body = await self._get_json(link, None) if link else await self._get_json(url, params)
            page = [self._record(raw) for raw in _values(body)]
            fresh = [
                r
                for r in page
                if r.modification_timestamp != last or r.listing_key not in read_at_last
            ]
            if fresh:
                yield fresh
            link = self._next_link(body)
            newest = page[-1].modification_timestamp if page else None
            if link is None or newest is None:
                return  # the end (or a server whose records carry no timestamp: its links)
            at_newest = {r.listing_key for r in page if r.modification_timestamp == newest}
            if last is not None and newest <= last:
                # One instant fills the page (or the server went back in time): asking again
                # from it would answer the same page, so follow the server's link.
                if newest == last:
                    read_at_last |= at_newest
                continue
            last, read_at_last, link = newest, at_newest, None
            params = {**params, "$filter": self._scoped(f"{field} ge {_stamp(newest)}")}

    async def _keyset_pages(self, since: datetime | None) -> AsyncIterator[list[MlsRecord]]:
        """Pages by keyset: each asks for the records after the last one seen, in
        (ModificationTimestamp, ListingKey) order, so a record that changes while we page
        moves behind us (to be read again, with its new timestamp) and never shifts an
        unread record past a page boundary, as an offset would."""
        size = self._page_size()
        field = self._profile.timestamp_field
        expression = f"{field} ge " + _stamp(since or _EPOCH)
        while True:
            params = {
                "$filter": self._scoped(expression),
                "$orderby": f"{field} asc,ListingKey asc",
                "$select": self._select(),
                "$top": str(size),
            }
            body = await self._get_json(f"{self._base_url}/Property", params)
            page = [self._record(raw) for raw in _values(body)]
            yield page
            # A short page is the end, unless the server cut it to its own page size (it
            # then offers a next link, which keyset paging does not follow).
            more = len(page) >= size or body.get("@odata.nextLink") is not None
            last = page[-1] if page else None
            if not more or last is None or last.modification_timestamp is None:
                return
            stamp, key = _stamp(last.modification_timestamp), odata_string(last.listing_key)
            expression = f"({field} gt {stamp} or ({field} eq {stamp} and ListingKey gt {key}))"

    async def fetch_keys(self) -> AsyncIterator[list[MlsRecord]]:
        """Pages of every record the feed has now, with only its keys and timestamp (a
        reconciliation's key-only pull), in the largest pages the vendor allows."""
        fields = KEY_FIELDS + self._stamp_select() + self._profile.extra_select
        params = {"$select": ",".join(fields)}
        if self._profile.require_originating_system:
            params["$filter"] = self._scoped("ModificationTimestamp ge " + _stamp(_EPOCH))
        params.update(self._largest_page())
        async for page in self._pages(params):
            yield [record for record in page if not record.gone]

    def _largest_page(self) -> dict[str, str]:
        if self._profile.page_size_via != "top":
            return {}
        largest = self._profile.top_cap or self._profile.page_size
        return {"$top": str(largest)} if largest else {}

    def _page_size(self) -> int:
        size = self._profile.page_size or self.batch_size
        return min(size, self._profile.top_cap) if self._profile.top_cap else size

    def _top(self, wanted: int) -> dict[str, str]:
        cap = self._profile.top_cap
        return {"$top": str(min(wanted, cap) if cap else wanted)}

    async def _pages(self, params: dict[str, str]) -> AsyncIterator[list[MlsRecord]]:
        async for body in self._bodies(f"{self._base_url}/Property", params):
            yield [self._record(raw) for raw in _values(body)]

    async def _bodies(self, url: str, params: dict[str, str]) -> AsyncIterator[Any]:
        """Each page's JSON body, following @odata.nextLink (which carries the query)."""
        next_url: str | None = url
        query: dict[str, str] | None = params
        while next_url is not None:
            body = await self._get_json(next_url, query)
            yield body
            next_url, query = self._next_link(body), None

    def _page_headers(self) -> dict[str, str]:
        if self._profile.page_size_via == "prefer" and self._profile.page_size:
            largest = self._profile.top_cap or self._page_size()
            return {"Prefer": f"odata.maxpagesize={largest}"}
        return {}

    async def _get_json(self, url: str, params: dict[str, str] | None) -> Any:
        if self._limiter is not None:
            await self._limiter.acquire()
        return await self._transport.get_json(url, params, self._page_headers())

    def _next_link(self, body: dict[str, Any]) -> str | None:
        link = body.get("@odata.nextLink")
        if link is None:
            return None
        if not isinstance(link, str):
            raise MlsPayloadError("@odata.nextLink is not a URL")
        # Never send the bearer token to a host other than the MLS's own, nor in clear.
        given, own = urlsplit(link), urlsplit(self._base_url)
        if given.netloc != own.netloc:
            raise MlsPayloadError("@odata.nextLink points at another host")
        if given.scheme != own.scheme:
            raise MlsPayloadError(f"@odata.nextLink changes the scheme to {given.scheme!r}")
        return link


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def _parse_record(raw: Any, stamp_field: str = "ModificationTimestamp") -> MlsRecord:
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
        # The timestamp replication pages on: the vendor's own where the MLS's misses changes
        # the vendor makes (Bridge's BridgeModificationTimestamp).
        modification_timestamp=_parse_timestamp(raw.get(stamp_field)),
        gone=raw.get("MlgCanView") is False,
        mls_status=_text(raw.get("MlsStatus")),
        list_agent_mls_id=_text(raw.get("ListAgentMlsId")),
        list_office_mls_id=_text(raw.get("ListOfficeMlsId")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _says(record: MlsRecord) -> tuple[object, bool]:
    """What a record says about its listing's status."""
    return record.standard_status, record.gone


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _odata_message(response: httpx.Response) -> str:
    return odata_message(response)
