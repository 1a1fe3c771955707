"""What a feed may change of its vendor profile: a short, typed, bounded list.

A user's private feed may describe *its MLS* (the fields in `MemberOverrides`): which
OriginatingSystemName it serves, its page size within the vendor's cap, its token endpoint and
scope. How hard and how fast we ask (rates, budgets, batch sizes, `or` caps, the replication
mode) is the operator's, for shared feeds (`OperatorOverrides`, through the admin routes and
CLI), within floors and ceilings: a user who could set `requests_per_second: 1e-9` stalled every
scheduled sync, and one who could raise it spent a vendor's budget faster than it allows.

Values are checked strictly (no "abc" for a page size, no NaN, no booleans for numbers); any
other field is refused by name. The same check runs when a stored feed is used, so a value
stored before these rules fails that feed's runs with a clear message instead of misbehaving.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mls_sync.mls.profiles import (
    ENTITY_EVENT_LOOKUPS,
    PAGING_MODES,
    REPLICATION_MODES,
    VendorProfile,
)

# MLS Grid's $top ceiling, the largest any profile documents.
MAX_PAGE_SIZE = 5000

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Url = Annotated[str, Field(min_length=8, max_length=500, pattern=r"^https?://[^\s]+$")]
Scope = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e ]+$")]
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)]


class OverrideError(ValueError):
    """An override that is not allowed or not valid; `field` names it (snake_case)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class MemberOverrides(BaseModel):
    """What the owner of a private feed may set: facts about that MLS."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    originating_system_name: Name | None = None
    page_size: PageSize | None = None
    token_url: Url | None = None
    scope: Scope | None = None


class OperatorOverrides(MemberOverrides):
    """What the operator may also set, for any feed: how hard the service asks."""

    requests_per_second: Annotated[float, Field(ge=0.1, le=1000.0, allow_inf_nan=False)] | None = (
        None
    )
    requests_per_hour: Annotated[int, Field(ge=60, le=1_000_000)] | None = None
    requests_per_day: Annotated[int, Field(ge=1_000, le=10_000_000)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=500)] | None = None
    max_or_operators: Annotated[int, Field(ge=1, le=100)] | None = None
    top_cap: PageSize | None = None
    replication: Literal[REPLICATION_MODES] | None = None  # type: ignore[valid-type]
    paging: Literal[PAGING_MODES] | None = None  # type: ignore[valid-type]
    entity_event_lookup: Literal[ENTITY_EVENT_LOOKUPS] | None = None  # type: ignore[valid-type]
    entity_event_resource_filter: bool | None = None
    # How long a vendor's punishment rests the credential (MLS Grid: an hour by default).
    suspension_seconds: (
        Annotated[float, Field(ge=60.0, le=86_400.0, allow_inf_nan=False)] | None
    ) = None


MEMBER_FIELDS = tuple(MemberOverrides.model_fields)
OPERATOR_FIELDS = tuple(OperatorOverrides.model_fields)


def checked_overrides(given: Mapping[str, Any] | None, *, operator: bool) -> dict[str, Any]:
    """The overrides, validated for who sets them (the operator, or a private feed's owner);
    only the fields given, as given. Raises OverrideError naming the first bad field."""
    values = dict(given or {})
    values.pop("auth_kind", None)  # the credentials say which (kept on older rows)
    model = OperatorOverrides if operator else MemberOverrides
    for name in values:
        if name not in model.model_fields:
            if name in OperatorOverrides.model_fields:
                raise OverrideError(name, "is set by the operator, not per connection")
            allowed = ", ".join(model.model_fields)
            raise OverrideError(name, f"is not a profile field that can be set; one of {allowed}")
    try:
        model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "profileOverrides"
        raise OverrideError(field, error["msg"]) from None
    return values


def check_against(profile: VendorProfile) -> None:
    """What only the resolved profile can tell: a page size within the vendor's cap."""
    page, cap = profile.page_size, profile.top_cap
    if page is not None and cap is not None and page > cap:
        raise OverrideError("page_size", f"at most {cap} on {profile.name} (the vendor's cap)")
