"""What the service tells the host platform: the webhook events, as versioned camelCase JSON.

Each event is an envelope in the Standard Webhooks shape (standardwebhooks.com, "Payload
structure": `type`, `timestamp`, `data`) with a `version` of its data's schema, so a receiver
can refuse a version it does not know instead of misreading it. The data models below are the
schemas (`event_schemas()` renders one JSON Schema per event for the docs); adding a field is
backward compatible, renaming or removing one is a new version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from mls_sync.domain.results import SyncResult, WireModel
from mls_sync.domain.status import ListingStatus

SCHEMA_VERSION = 1


class ListingStatusChanged(WireModel):
    """A listing's status followed the MLS (`listing.status_changed`)."""

    listing_id: str
    mls_number: str
    old_status: ListingStatus
    new_status: ListingStatus
    connection_id: str
    run_id: str | None = None


class ListingRestored(WireModel):
    """A pending listing is active again (`listing.restored`)."""

    listing_id: str
    mls_number: str
    connection_id: str
    run_id: str | None = None


class PostUnpublished(WireModel):
    """A sold listing's post was deleted on its platform (`post.unpublished`)."""

    post_id: str
    listing_id: str
    platform: str
    platform_post_id: str


class PostUnpublishFailed(WireModel):
    """A post could not be taken down (`post.unpublish_failed`). `action_required`: only a
    person can mend it (reconnect the platform); otherwise it is retried by itself."""

    post_id: str
    listing_id: str
    platform: str
    reason: str
    action_required: bool


class ConnectionReauthRequired(WireModel):
    """An MLS or platform connection needs its user to sign in again."""

    connection_id: str
    kind: Literal["mls", "platform"]
    platform: str | None = None
    message: str


class SyncRunFinished(WireModel):
    """A run ended (`sync_run.finished`): its totals are the sync response's `data`."""

    run_id: str
    trigger: str
    success: bool
    message: str
    data: SyncResult


class AlertFired(WireModel):
    """An alert fired (`alert.fired`), as the alert webhook and the log show it."""

    alert: str
    severity: Literal["warning", "critical"]
    summary: str
    labels: dict[str, str] = Field(default_factory=dict)


EVENT_TYPES: dict[str, type[WireModel]] = {
    "listing.status_changed": ListingStatusChanged,
    "listing.restored": ListingRestored,
    "post.unpublished": PostUnpublished,
    "post.unpublish_failed": PostUnpublishFailed,
    "connection.reauth_required": ConnectionReauthRequired,
    "sync_run.finished": SyncRunFinished,
    "alert.fired": AlertFired,
}


EVENT_NAMES: dict[type[WireModel], str] = {model: name for name, model in EVENT_TYPES.items()}


class UnknownEventType(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown event type {name!r}; one of {', '.join(EVENT_TYPES)}")
        self.name = name


def envelope(data: WireModel, *, at: datetime) -> dict[str, Any]:
    """The JSON a receiver gets for `data`, sent at `at` (aware)."""
    return {
        "type": EVENT_NAMES[type(data)],
        "version": SCHEMA_VERSION,
        "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": data.to_wire(),
    }


def check_event_types(names: list[str]) -> list[str]:
    """The event types an endpoint subscribes to, each known (UnknownEventType otherwise)."""
    for name in names:
        if name not in EVENT_TYPES:
            raise UnknownEventType(name)
    return list(dict.fromkeys(names))


def event_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema per event type: the whole envelope, its `data` that event's model."""
    schemas = {}
    for name, model in EVENT_TYPES.items():
        data = model.model_json_schema(by_alias=True)
        schemas[name] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": name,
            "type": "object",
            "required": ["type", "version", "timestamp", "data"],
            "properties": {
                "type": {"const": name},
                "version": {"const": SCHEMA_VERSION},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {k: v for k, v in data.items() if k != "$defs"},
            },
            **({"$defs": data["$defs"]} if "$defs" in data else {}),
        }
    return schemas
