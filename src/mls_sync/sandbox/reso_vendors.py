"""What the sandbox MLS refuses, per vendor mode, and the faults a test can inject.

Vendor modes (`ResoSandbox.vendor`), each refusing what the vendor refuses (`VENDOR_RULES`):
- "generic": any RESO server; `supports_in = False` makes it answer `in` with 400, like servers
  that implement OData 4.0 without the 4.01 `in` operator.
- "mlsgrid": MLS Grid v2's rules: `Accept-Encoding: gzip` required (checked before auth),
  exactly one `OriginatingSystemName eq '...'`, only MLS Grid's filterable fields (not
  ListingKey, not ListAgentMlsId), at most 5 `or`, `$top` (the page size) at most 5000,
  records carry `MlgCanView`; going over the rate limit suspends the token for an hour.
- "bridge": no `in`; records carry `BridgeModificationTimestamp`; on `/api/v2/` `$top` is the
  page size, at most 200, 10 when absent; on `/api/v3/` `$top` caps the collection and the page
  size is `Prefer: odata.maxpagesize`; every answer carries `Application-RateLimit-*`, and
  the hourly quota spent answers 429 with `-Remaining: 0` and `-Reset`.
- "trestle": only tokens from the OAuth2 endpoint (no static keys), `$top` at most 1000,
  `Hour-Quota-Limit` / `-Available` / `-ResetTime` on every answer, 429 once the hour's quota
  is spent.
- "spark": `$top` at most 1000, next links by `$skiptoken`, a refused token is 401 with code
  1020, going over the rate limit is code 1550 (with HTTP 429).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from mls_sync.sandbox.odata import ODataQueryError, _tokenize

MLSGRID_MAX_OR = 5
# MLS Grid v2 filters on these Property fields only (docs.mlsgrid.com, "Filtering": not
# ListingKey, not ListAgentMlsId); anything else is a 400 naming the field.
MLSGRID_FILTERABLE = frozenset(
    {
        "OriginatingSystemName",
        "ModificationTimestamp",
        "StandardStatus",
        "PropertyType",
        "ListingId",
        "MlgCanView",
        "ListOfficeMlsId",
    }
)
_OPERATORS = frozenset(
    {"and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "in", "true", "false", "null"}
)


@dataclass(frozen=True)
class Fault:
    """One injected answer: `status` with `body` (text, or JSON for a dict/list; None means an
    OData error body), after `delay` seconds (longer than the client's timeout = a timeout)."""

    status: int = 200
    body: str | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def response(self) -> Response | None:
        if self.body is None:
            return None  # the caller renders its OData error for `status`
        if isinstance(self.body, str):
            return Response(self.body, self.status, self.headers, media_type="text/html")
        return Response(
            json.dumps(self.body), self.status, self.headers, media_type="application/json"
        )


@dataclass(frozen=True)
class VendorRules:
    """How one vendor mode pages and what it refuses, beyond the filter rules above."""

    top_cap: int | None = None  # a larger $top is a 400
    top_is_page_size: bool = False  # $top sizes each page (MLS Grid, Bridge v2)
    default_page_size: int | None = None  # without $top (Bridge v2: 10)
    extra_fields: tuple[str, ...] = ()  # fields only this vendor's records carry
    quota_family: str | None = None  # the quota headers every answer carries
    static_tokens: bool = True  # False: only tokens from the OAuth2 endpoint work
    skiptoken: bool = False  # next links carry $skiptoken, not $skip
    rate_limit_code: int | None = None  # the vendor's code in a rate-limit answer
    auth_error_code: int | None = None  # the vendor's code in a 401


VENDOR_RULES: dict[str, VendorRules] = {
    "generic": VendorRules(),
    "mlsgrid": VendorRules(top_cap=5000, top_is_page_size=True, extra_fields=("MlgCanView",)),
    "bridge": VendorRules(
        top_cap=200, extra_fields=("BridgeModificationTimestamp",), quota_family="bridge"
    ),
    "trestle": VendorRules(top_cap=1000, quota_family="trestle", static_tokens=False),
    "spark": VendorRules(top_cap=1000, skiptoken=True, rate_limit_code=1550, auth_error_code=1020),
}


def rules_for(vendor: str) -> VendorRules:
    return VENDOR_RULES[vendor]


def bridge_version(path: str) -> int | None:
    """2 or 3 for a Bridge path (`/api/v2/OData/<dataset>/Property`), None elsewhere."""
    match = re.match(r"/api/v(\d+)/OData/", path)
    return int(match.group(1)) if match else None


def quota_headers(family: str | None, limit: int, remaining: int, reset: int) -> dict[str, str]:
    """The quota headers of `family` (`reset`: seconds until the hour's quota renews)."""
    if family == "bridge":  # bridgeinteractive.com: Application-RateLimit-* (per hour)
        return {
            "Application-RateLimit-Limit": str(limit),
            "Application-RateLimit-Remaining": str(remaining),
            "Application-RateLimit-Reset": str(reset),
        }
    if family == "trestle":  # trestle-documentation.corelogic.com/webapi-at-scale.html
        return {
            "Hour-Quota-Limit": str(limit),
            "Hour-Quota-Available": str(remaining),
            "Hour-Quota-ResetTime": str(reset),
        }
    return {}


def compression_required(vendor: str, accept_encoding: str) -> bool:
    return vendor == "mlsgrid" and "gzip" not in accept_encoding.lower()


def check_filter(vendor: str, filter_text: str | None, *, supports_in: bool) -> None:
    """Raise ODataQueryError for a $filter this vendor refuses."""
    names = [t.text for t in _tokenize(filter_text or "") if t.kind == "name"]
    if (not supports_in or vendor == "bridge") and "in" in names:
        raise ODataQueryError("the 'in' operator is not supported (OData 4.0 server)")
    if vendor != "mlsgrid":
        return
    if names.count("OriginatingSystemName") != 1:
        raise ODataQueryError("exactly one OriginatingSystemName filter is required")
    for name in names:
        if name not in _OPERATORS and name not in MLSGRID_FILTERABLE:
            raise ODataQueryError(f"{name} is not a searchable field")
    if names.count("or") > MLSGRID_MAX_OR:
        raise ODataQueryError(f"at most {MLSGRID_MAX_OR} 'or' operators are allowed")


def as_label(value: Any) -> Any:
    """`ActiveUnderContract` -> `Active Under Contract`: the lookup-label wire form."""
    if not isinstance(value, str):
        return value
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", value)


__all__ = [
    "VENDOR_RULES",
    "Fault",
    "HTTPStatus",
    "VendorRules",
    "as_label",
    "bridge_version",
    "check_filter",
    "compression_required",
    "quota_headers",
    "rules_for",
]
