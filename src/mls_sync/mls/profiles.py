"""Vendor profiles: what each MLS vendor's RESO Web API expects, as data.

A feed names a profile (`mls_feeds.provider`) and may override any field
(`mls_feeds.profile_overrides`, a JSON object), e.g. MLS Grid's `originating_system_name`
or a generic server's `token_url`. Figures come from each vendor's documentation, cited below;
they change, which is why every field can be overridden per feed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# "bearer": a static token; "oauth2": client credentials; "oauth2_refresh": a signed-in user's
# tokens renewed with the refresh token; "oauth2_password": a member's login (mls/logins.py).
AUTH_KINDS = ("bearer", "oauth2", "oauth2_refresh", "oauth2_password")
FILTER_STYLES = ("in", "or")
PAGE_SIZE_VIA = ("none", "top", "prefer")
BUDGET_SCOPES = ("credential", "host")
REPLICATION_MODES = ("timestamp", "entity_event")
PAGING_MODES = ("restart", "keyset", "next_link")
ENTITY_EVENT_LOOKUPS = ("key", "batch")
TIMESTAMP_FIELDS = ("ModificationTimestamp", "BridgeModificationTimestamp")
LOOKUP_KEY_FIELDS = ("ListingKey", "ListingId")  # the fields a listing is looked up by


class ProfileError(ValueError):
    """A profile that cannot work; `setting` names the one at fault, when one is."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


@dataclass(frozen=True)
class VendorProfile:
    name: str
    base_url_shape: str = ""  # documentation only: where the RESO root usually is
    auth_kind: str = "bearer"  # one of AUTH_KINDS: how the feed's credentials are used
    token_url: str | None = None
    scope: str | None = None
    key_field: str = "ListingKey"  # the field lookups filter on (ListingKey unless refused)
    filter_style: str = "in"  # first choice; "in" falls back to "or" chains on a 400
    max_or_operators: int | None = None  # a cap on `or` in one $filter (MLS Grid: 5)
    originating_system_name: str | None = None  # MLS Grid: one per request, required
    require_originating_system: bool = False
    gzip: bool = False  # send Accept-Encoding: gzip explicitly (MLS Grid refuses without)
    page_size: int | None = None  # records per page we ask for; None leaves it to the server
    page_size_via: str = "none"  # "top": $top is the page size; "prefer": odata.maxpagesize
    top_cap: int | None = None  # the largest $top the server accepts
    batch_size: int = 50  # keys per lookup request
    requests_per_second: float = 2.0
    requests_per_hour: int | None = None
    requests_per_day: int | None = None
    budget_per: str = "credential"  # "host": every credential on the host shares one budget
    auth_error_codes: frozenset[int] = frozenset()  # vendor codes that mean "re-authenticate"
    rate_limit_codes: frozenset[int] = frozenset()  # vendor codes that mean "slow down"
    # A rate-limit answer that punishes (MLS Grid suspends the token): nothing is sent with the
    # credential for this many seconds, or until the vendor's Retry-After if later; no retry
    # in between, ever. None: a rate-limit answer is waited out and retried (Retry-After).
    suspension_seconds: float | None = None
    # How far behind its last run each replication starts, at least (the engine's clock skew
    # allowance is the floor): records the vendor stamps late are read again, not missed.
    replication_window_seconds: float = 0.0
    # Hosts the vendor retired, and the host that replaced each: a feed stored with an old
    # one is asked at the new one (its base and token URLs), so it outlives the retirement.
    host_aliases: tuple[tuple[str, str], ...] = ()
    # Settings that depend on the API version a base URL names: (path fragment, overrides),
    # the first fragment found in the feed's base URL wins (Bridge pages differently on v2
    # and v3).
    url_modes: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    gone_field: str | None = None  # a boolean field that is false when the record is gone
    # The fields the vendor lets a $filter name (empty: any). The client refuses to send a
    # filter on another one rather than spend a request on the vendor's 400.
    filterable_fields: frozenset[str] = frozenset()
    replication: str = "timestamp"  # or "entity_event" (RESO RCP-027) where offered
    # The field replication filters, orders and bookmarks on: the MLS's ModificationTimestamp,
    # or a vendor's own that also moves when the vendor changes a record (Bridge).
    timestamp_field: str = "ModificationTimestamp"
    # How replication pages on. Following the server's @odata.nextLink ("next_link") pages by
    # offset on most servers: records that change while a client pages shift under it and
    # can be skipped (RESOStandards/reso-tools #254, tylercollier/openresync #6). "restart"
    # (the default) asks each page again from the newest timestamp read (`ge`), dropping
    # what was read at that instant, and follows a link only when one instant fills a page;
    # "keyset" asks each page after the last record seen, by (timestamp, ListingKey), where
    # the server can order and filter on both.
    paging: str = "restart"
    # Entity-event replication fetches each changed Property: "key" asks `/Property('KEY')`
    # (404 = gone, the RCP-027 way); "batch" asks `ListingKey in (...)`, batch_size a request,
    # where the server lets us filter on ListingKey (absent from the answer = gone).
    entity_event_lookup: str = "key"
    # RCP-027 does not promise ResourceName is filterable: by default the client drops other
    # resources' events itself; True asks the server to (`and ResourceName eq 'Property'`).
    entity_event_resource_filter: bool = False

    def __post_init__(self) -> None:
        _one_of("auth_kind", self.auth_kind, AUTH_KINDS)
        _one_of("filter_style", self.filter_style, FILTER_STYLES)
        _one_of("page_size_via", self.page_size_via, PAGE_SIZE_VIA)
        _one_of("budget_per", self.budget_per, BUDGET_SCOPES)
        _one_of("replication", self.replication, REPLICATION_MODES)
        _one_of("paging", self.paging, PAGING_MODES)
        _one_of("entity_event_lookup", self.entity_event_lookup, ENTITY_EVENT_LOOKUPS)
        _one_of("timestamp_field", self.timestamp_field, TIMESTAMP_FIELDS)
        if self.key_field not in LOOKUP_KEY_FIELDS:
            raise ValueError("key_field must be ListingKey or ListingId")
        if not 0 <= self.replication_window_seconds <= 86400:
            raise ValueError("replication_window_seconds must be between 0 and 86400")
        if self.suspension_seconds is not None and not 0 < self.suspension_seconds <= 86400:
            raise ValueError("suspension_seconds must be between 0 and 86400")
        if self.requests_per_second <= 0 or self.batch_size < 1:
            raise ValueError("requests_per_second and batch_size must be positive")
        if self.require_originating_system and not self.originating_system_name:
            raise ValueError(f"profile {self.name!r}: set originating_system_name")

    @property
    def extra_select(self) -> tuple[str, ...]:
        return (self.gone_field,) if self.gone_field else ()

    def for_url(self, base_url: str) -> VendorProfile:
        """The profile as it applies to `base_url` (its version's paging, where it differs)."""
        path = urlsplit(base_url).path
        for fragment, overrides in self.url_modes:
            if fragment in path:
                return dataclasses.replace(self, **dict(overrides))
        return self

    def current_url(self, url: str) -> str:
        """`url` with a retired host of this vendor replaced by the host that took over."""
        parts = urlsplit(url)
        for old, new in self.host_aliases:
            if parts.hostname == old:
                return urlunsplit(parts._replace(netloc=parts.netloc.replace(old, new, 1)))
        return url


def _one_of(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)}, not {value!r}")


PROFILES: dict[str, VendorProfile] = {
    # Any RESO Web API 2.0 server: bearer token, `in` tried first, server-driven paging.
    "generic": VendorProfile(name="generic", base_url_shape="https://<host>/<odata root>"),
    # MLS Grid API v2 (https://docs.mlsgrid.com/api-documentation/api-version-2.0): replication
    # only; every request must filter on exactly one OriginatingSystemName and send
    # `Accept-Encoding: gzip` (400 "COMPRESSION REQUIRED" otherwise); ListingKey is not
    # filterable, ListingId is, and only OriginatingSystemName, ModificationTimestamp,
    # StandardStatus, PropertyType, ListingId, MlgCanView and ListOfficeMlsId are (not
    # ListAgentMlsId: imports read the feed's replica instead); `in` is supported and v2
    # prefers it to `or` chains (at most 5 `or`); $top is the page size (default 500, at most
    # 5000); 2 req/s, 7,200/h and 40,000/day per token, and going over *suspends the token*
    # (no 429 first, no rate headers); `MlgCanView eq false` means the record must be removed.
    "mlsgrid": VendorProfile(
        name="mlsgrid",
        base_url_shape="https://api.mlsgrid.com/v2",
        key_field="ListingId",
        filter_style="in",
        max_or_operators=5,
        require_originating_system=True,
        originating_system_name="mlsgrid",  # placeholder: each MLS's own name, e.g. "mred"
        gzip=True,
        page_size=500,
        page_size_via="top",
        top_cap=5000,
        requests_per_second=2.0,
        requests_per_hour=7200,
        requests_per_day=40000,
        gone_field="MlgCanView",
        filterable_fields=frozenset(
            {
                "OriginatingSystemName",
                "ModificationTimestamp",
                "StandardStatus",
                "PropertyType",
                "ListingId",
                "MlgCanView",
                "ListOfficeMlsId",
            }
        ),
        # Going over answers 429 and suspends the token until usage drops ("Exceeding limits
        # returns HTTP 429 and temporarily suspends access", docs.mlsgrid.com, Rate Limits):
        # retrying keeps usage high, so the credential rests an hour (operator-configurable).
        suspension_seconds=3600.0,
    ),
    # Bridge Interactive RESO Web API (bridgedataoutput.com/docs/platform): a server token as
    # bearer; `eq`/`ne`/`gt`/`lt`/`ge`/`le`/`and`/`or`/`not`, no `in`, so lookups are `or`
    # chains from the start. On v2, `$top` is the page size (at most 200, default 10); on v3
    # (since 29 July 2025) `$top` is the collection size and the page size is the
    # `Prefer: odata.maxpagesize` preference (bridgeinteractive.com, "Upcoming change to $top
    # and page size behavior", 2025): the base URL's version decides. 5,000 requests an hour
    # per application, announced in `Application-RateLimit-*` headers, plus per-minute burst
    # limits in `Burst-RateLimit-*` (bridgeinteractive.com, "New per-minute burst rate
    # limits", 2024); the budget reads both.
    "bridge": VendorProfile(
        name="bridge",
        base_url_shape="https://api.bridgedataoutput.com/api/v2/OData/<dataset>",
        filter_style="or",
        # Increments on Bridge's own timestamp: ModificationTimestamp is the MLS's, and a
        # change Bridge makes to a record does not move it (../VENDORS.md, from
        # bridgedataoutput.com/docs/platform; Bridge's OData filters and orders on it:
        # `BridgeModificationTimestamp ge ...`).
        timestamp_field="BridgeModificationTimestamp",
        page_size=200,
        page_size_via="prefer",
        top_cap=200,
        requests_per_second=2.0,
        requests_per_hour=5000,
        url_modes=(
            ("/api/v2/", (("page_size_via", "top"), ("top_cap", 200))),
            ("/api/v3/", (("page_size_via", "prefer"),)),
        ),
    ),
    # Trestle by Cotality/CoreLogic (trestle-documentation.corelogic.com/webapi.html): OAuth2
    # client credentials at /trestle/oidc/connect/token with scope=api, tokens valid for hours;
    # $top up to 1000; a baseline quota of 7,200 queries/hour per product, reported in
    # `Minute-Quota-Limit` / `Hour-Quota-Limit` headers (webapi-at-scale.html), read here.
    # The hosts api-trestle.corelogic.com and api-prod.corelogic.com are being retired for
    # api.cotality.com (the notice on every page of trestle-documentation.corelogic.com; its
    # OpenID discovery names https://api.cotality.com/trestle/oidc/connect/token): feeds
    # stored with an old host are asked at the new one.
    "trestle": VendorProfile(
        name="trestle",
        base_url_shape="https://api.cotality.com/trestle/odata",
        auth_kind="oauth2",
        token_url="https://api.cotality.com/trestle/oidc/connect/token",
        host_aliases=(
            ("api-trestle.corelogic.com", "api.cotality.com"),
            ("api-prod.corelogic.com", "api.cotality.com"),
        ),
        scope="api",
        page_size=1000,
        page_size_via="top",
        top_cap=1000,
        requests_per_second=2.0,
        requests_per_hour=7200,
    ),
    # Spark Platform RESO Web API (sparkplatform.com/docs/supporting_documentation/error_codes):
    # a bearer access token; code 1000 (invalid key) and 1020 (session token expired) come with
    # 401; code 1550 "Over rate limit" is documented with HTTP 503 and seen with 429, so the
    # code, not the status, decides; replication keys may ask 1000 records a request. Each
    # update starts from the last successful run minus 20 minutes (sparkplatform.com/docs/
    # reso/replication): the replication window keeps the bookmark that far behind.
    "spark": VendorProfile(
        name="spark",
        base_url_shape="https://replication.sparkapi.com/Reso/OData",
        page_size=1000,
        page_size_via="top",
        top_cap=1000,
        # Agents sign in with OpenID Connect: tokens from this endpoint, renewed with the
        # refresh token (sparkplatform.com/docs/authentication/openid_connect_authentication;
        # discovery at https://sparkplatform.com/.well-known/openid-configuration).
        token_url="https://sparkplatform.com/openid/token",
        auth_error_codes=frozenset({1000, 1010, 1020}),
        rate_limit_codes=frozenset({1550}),
        # Spark documents no reset time for 1550: the credential rests five minutes (a third
        # of a cycle), so the next cycle asks again instead of a retry a second later.
        suspension_seconds=300.0,
        replication_window_seconds=1200.0,
        requests_per_second=1.0,
    ),
    # Rapattoni RESO Web API: each member signs in with an OAuth2 password grant (the member's
    # MLS id and password), getting a 7-day access token and a refresh token (rapattoni.com/dev,
    # as ../VENDORS.md records it: second-hand). The token endpoint is the MLS's own: given
    # with the credentials (tokenUrl), there is no one default.
    "rapattoni": VendorProfile(
        name="rapattoni",
        base_url_shape="https://<mls>.rapattoni.com/<odata root> (ask the MLS)",
        auth_kind="oauth2_password",
        requests_per_second=1.0,
    ),
}

_FIELDS = {f.name: f for f in dataclasses.fields(VendorProfile)}


def resolve_profile(name: str, overrides: Mapping[str, Any] | None = None) -> VendorProfile:
    """The named profile with a connection's overrides applied (unknown names are errors, so
    a typo never silently falls back to a default)."""
    try:
        base = PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown MLS profile {name!r}; one of {', '.join(PROFILES)}") from None
    changes: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key not in _FIELDS or key == "name":
            raise ValueError(f"unknown MLS profile field {key!r}")
        if key.endswith("_codes"):
            value = frozenset(int(v) for v in value)
        changes[key] = value
    profile = dataclasses.replace(base, **changes)
    # Checked here, not in __post_init__: a profile may leave the endpoint to each feed
    # (Rapattoni's is the MLS's own), but a feed that signs in must name one.
    if profile.auth_kind != "bearer" and not profile.token_url:
        raise ProfileError(f"{profile.auth_kind} needs a token URL (tokenUrl)", "token_url")
    return profile
