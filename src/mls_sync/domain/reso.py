"""RESO `StandardStatus` onto our statuses (DESIGN.md section 2).

RESO Data Dictionary 2.0 lookups travel as enum names (`ActiveUnderContract`) on most servers
and as display labels (`Active Under Contract`) on others, so both forms are accepted: values
are compared after dropping case, spaces, hyphens and underscores. An unknown value is an error
for that listing; the sync never guesses a status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mls_sync.domain.status import ListingStatus

LISTING_NOT_FOUND = "Listing not found in MLS"

DEFAULT_STATUS_MAP: Mapping[str, ListingStatus] = {
    "ComingSoon": ListingStatus.COMING_SOON,
    "Active": ListingStatus.ACTIVE,
    "ActiveUnderContract": ListingStatus.PENDING,
    "Pending": ListingStatus.PENDING,
    "Closed": ListingStatus.SOLD,
    "Withdrawn": ListingStatus.OFF_MARKET,
    "Expired": ListingStatus.OFF_MARKET,
    "Canceled": ListingStatus.OFF_MARKET,
    "Hold": ListingStatus.OFF_MARKET,
}

# Values that say the record is not a live listing at all: not a status of ours.
NOT_A_LISTING = frozenset({"Delete", "Incomplete"})


class StatusMappingError(ValueError):
    """The MLS sent a status we cannot map; the message is what the user sees."""


class ListingGoneError(StatusMappingError):
    """The MLS says the record is deleted or incomplete: treated as not found."""

    def __init__(self) -> None:
        super().__init__(LISTING_NOT_FOUND)


def _normalise(value: str) -> str:
    return re.sub(r"[\s_\-]+", "", value).casefold()


class StatusMapper:
    """Maps wire values to our statuses; `overrides` add or replace entries per connection
    (for a local `MlsStatus` vocabulary, say)."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        table: dict[str, ListingStatus] = {_normalise(k): v for k, v in DEFAULT_STATUS_MAP.items()}
        for wire_value, ours in (overrides or {}).items():
            try:
                table[_normalise(wire_value)] = ListingStatus(ours)
            except ValueError as exc:
                raise ValueError(
                    f"status override {wire_value!r} -> {ours!r}: {ours!r} is not one of "
                    f"{', '.join(s.value for s in ListingStatus)}"
                ) from exc
        self._table = table
        self._gone = {_normalise(v) for v in NOT_A_LISTING}

    def map(self, wire_value: object) -> ListingStatus:
        if wire_value is None or (isinstance(wire_value, str) and not wire_value.strip()):
            raise StatusMappingError("MLS record has no StandardStatus")
        if not isinstance(wire_value, str):
            raise StatusMappingError(f"MLS StandardStatus is not text: {wire_value!r}")
        key = _normalise(wire_value)
        if key in self._gone:
            raise ListingGoneError()
        try:
            return self._table[key]
        except KeyError:
            raise StatusMappingError(f"Unknown MLS status: {wire_value!r}") from None


def map_standard_status(wire_value: object) -> ListingStatus:
    """Map with the default table (both enum and label forms)."""
    return _DEFAULT_MAPPER.map(wire_value)


_DEFAULT_MAPPER = StatusMapper()
