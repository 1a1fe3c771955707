"""Request and response bodies: snake_case in Python, camelCase on the wire.

Requests refuse unknown fields (a misspelt field is a 422, not silently ignored) and text with
control characters (NUL would reach PostgreSQL as an error). Responses never carry a secret:
only whether one is stored. The sync routes answer with the product spec's types from
`mls_sync.domain.results`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
)
from pydantic.alias_generators import to_camel

from mls_sync.domain.status import ListingStatus
from mls_sync.services.feeds import PROVIDERS
from mls_sync.services.platforms import Login, Platform

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

# The `responses=` of a route: its other answers, for the OpenAPI document.
Responses = dict[int | str, dict[str, Any]]


def _text(max_length: int) -> Any:
    return StringConstraints(
        strip_whitespace=True, min_length=1, max_length=max_length, pattern=_PRINTABLE
    )


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date is out of range") from None


Name = Annotated[str, StringConstraints(max_length=200, pattern=_PRINTABLE)]
Key = Annotated[str, _text(200)]
ShortText = Annotated[str, _text(100)]
Secret = Annotated[str, _text(8192)]
Url = Annotated[HttpUrl, Field(max_length=500)]
Id = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$", description="an id this service gave")]
Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
# A Literal of the profile names, read from the profiles at import (mypy wants literals
# written out, but the list must follow the profiles): valid-type.
Provider = Literal[PROVIDERS]  # type: ignore[valid-type]
ProfileValue = str | int | float | bool | list[int] | None


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RequestModel(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ResponseModel(ApiModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class ErrorOut(BaseModel):
    detail: str


# health


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str


# users


class UserOut(ResponseModel):
    id: str
    email: str
    created_at: datetime


# MLS connections


class MlsCredentialsIn(RequestModel):
    """A bearer `token`; for `authKind: oauth2` an OAuth2 client (`clientId`, `clientSecret`);
    for `oauth2_refresh` a signed-in user's `refreshToken` (Spark OpenID Connect, any OAuth2
    server: renewed by the service from then on); for `oauth2_password` a member's login
    (`username`: the member's MLS id, `password`; Rapattoni). `tokenUrl` where the provider
    profile has none."""

    auth_kind: Literal["bearer", "oauth2", "oauth2_refresh", "oauth2_password"] = "bearer"
    token: Secret | None = None
    client_id: Secret | None = None
    client_secret: Secret | None = None
    token_url: Url | None = None
    scope: ShortText | None = None
    refresh_token: Secret | None = None
    username: ShortText | None = Field(default=None, description="the member's MLS id")
    password: Secret | None = None


class MlsConnectionCreate(MlsCredentialsIn):
    """Join a shared MLS feed (`feedId`, from the operator: no credentials), or connect with
    credentials of your own (`baseUrl` with a `token`, or an OAuth2 client: a private feed,
    for per-agent logins). Key field, filter style and page size come from the provider
    profile unless given."""

    feed_id: Id | None = Field(default=None, description="a shared feed's id (no credentials)")
    base_url: Url | None = Field(
        default=None, description="the RESO Web API root, where /Property lives"
    )
    name: Name = ""
    agent_mls_id: ShortText | None = Field(default=None, description="your ListAgentMlsId")
    office_mls_id: ShortText | None = Field(default=None, description="your ListOfficeMlsId")
    provider: Provider = "generic"
    key_field: Literal["ListingKey", "ListingId"] | None = None
    filter_style: Literal["in", "or"] | None = None
    profile_overrides: dict[ShortText, ProfileValue] | None = Field(
        default=None, description="vendor profile fields to override, e.g. originating_system_name"
    )
    status_overrides: dict[ShortText, ListingStatus] | None = Field(
        default=None, description="local MLS status values and the status each means"
    )


class MlsConnectionUpdate(RequestModel):
    """Any of: a new name, agent or office id; on your own credentials, a new base URL, new
    credentials (re-authenticate) or status overrides."""

    name: Name | None = None
    agent_mls_id: ShortText | None = None
    office_mls_id: ShortText | None = None
    base_url: Url | None = None
    credentials: MlsCredentialsIn | None = None
    status_overrides: dict[ShortText, ListingStatus] | None = None


class MlsConnectionOut(ResponseModel):
    id: str
    name: str
    feed_id: str
    shared_feed: bool
    agent_mls_id: str | None
    office_mls_id: str | None
    provider: str
    base_url: str
    auth_kind: str
    key_field: str
    filter_style: str
    state: str
    state_message: str | None
    last_sync_at: datetime | None
    created_at: datetime
    feed_loaded_at: datetime | None = Field(
        description="when the feed's local copy first held every record; null while it loads"
    )
    feed_suspended_until: datetime | None = Field(
        default=None,
        description="until when the MLS has suspended the feed's credential (over its "
        "request limits); null when it is not suspended",
    )


# MLS feeds (the operator's)


Cadence = Annotated[int, Field(ge=60, le=86_400, description="seconds between runs")]


class MlsFeedCreate(RequestModel):
    base_url: Url = Field(description="the RESO Web API root, where /Property lives")
    credentials: MlsCredentialsIn
    name: Name = ""
    provider: Provider = "generic"
    key_field: Literal["ListingKey", "ListingId"] | None = None
    filter_style: Literal["in", "or"] | None = None
    profile_overrides: dict[ShortText, ProfileValue] | None = None
    status_overrides: dict[ShortText, ListingStatus] | None = None
    cadence_seconds: Cadence = 900


class MlsFeedUpdate(RequestModel):
    name: Name | None = None
    base_url: Url | None = None
    credentials: MlsCredentialsIn | None = None
    status_overrides: dict[ShortText, ListingStatus] | None = None
    cadence_seconds: Cadence | None = None


class MlsFeedOut(ResponseModel):
    id: str
    name: str
    shared: bool
    owner_user_id: str | None
    provider: str
    base_url: str
    auth_kind: str
    key_field: str
    filter_style: str
    state: str
    state_message: str | None
    cadence_seconds: int
    loaded_at: datetime | None
    reconciled_at: datetime | None
    bookmark_timestamp: datetime | None
    last_run_at: datetime | None
    suspended_until: datetime | None = Field(
        description="until when the MLS has suspended the feed's credential (over its "
        "request limits): nothing is sent before; null when it is not suspended"
    )
    created_at: datetime
    members: int
    records: int


# platform connections


class PlatformConnectionSet(RequestModel):
    access_token: Secret
    refresh_token: Secret | None = None
    expires_at: Timestamp | None = None
    # Instagram only: "facebook" (a Page token; deletes work) or "instagram" (the default)
    login: Login | None = None


class PlatformConnectionOut(ResponseModel):
    id: str
    platform: str
    state: str
    state_message: str | None
    expires_at: datetime | None
    has_refresh_token: bool
    login: str | None = None
    created_at: datetime


# listings


class ListingRegister(RequestModel):
    """Register a listing by its RESO ListingKey; what is left out is read from the feed's
    local copy."""

    mls_connection_id: Id
    listing_key: Key
    mls_number: ShortText | None = Field(default=None, description="RESO ListingId")
    status: ListingStatus | None = None


class ListingImport(RequestModel):
    """Import every listing of an agent and/or an office (their MLS ids)."""

    agent_mls_id: ShortText | None = Field(default=None, description="RESO ListAgentMlsId")
    office_mls_id: ShortText | None = Field(default=None, description="RESO ListOfficeMlsId")


class ListingOut(ResponseModel):
    id: str
    mls_connection_id: str
    listing_key: str
    mls_number: str
    status: ListingStatus
    mls_modified_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SkippedListing(ApiModel):
    listing_key: str
    error: str


class ImportOut(ApiModel):
    imported: int
    already_present: int
    skipped: list[SkippedListing]
    listings: list[ListingOut]


# posts


class PostCreate(RequestModel):
    listing_id: Id
    platform: Platform
    platform_post_id: Key


class PostOut(ResponseModel):
    id: str
    listing_id: str
    platform: str
    platform_post_id: str
    status: str
    unpublished_at: datetime | None
    last_error: str | None
    created_at: datetime
