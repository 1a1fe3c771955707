"""What the sandbox MLS refuses, per vendor mode, and the faults a test can inject.

Vendor modes (`ResoSandbox.vendor`):
- "generic": any RESO server; `supports_in = False` makes it answer `in` with 400, like servers
  that implement OData 4.0 without the 4.01 `in` operator.
- "mlsgrid": MLS Grid v2's rules: `Accept-Encoding: gzip` required (checked before auth),
  exactly one `OriginatingSystemName eq '...'`, only MLS Grid's filterable fields (not
  ListingKey, not ListAgentMlsId), at most 5 `or`, and records carry `MlgCanView`.
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


def compression_required(vendor: str, accept_encoding: str) -> bool:
    return vendor == "mlsgrid" and "gzip" not in accept_encoding.lower()


def check_filter(vendor: str, filter_text: str | None, *, supports_in: bool) -> None:
    """Raise ODataQueryError for a $filter this vendor refuses."""
    names = [t.text for t in _tokenize(filter_text or "") if t.kind == "name"]
    if not supports_in and "in" in names:
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


__all__ = ["Fault", "HTTPStatus", "as_label", "check_filter", "compression_required"]
