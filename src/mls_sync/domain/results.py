"""Result types with the exact camelCase JSON of the product spec (DESIGN.md section 5)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from mls_sync.domain.status import ListingStatus


class WireModel(BaseModel):
    """snake_case in Python, camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class SyncError(WireModel):
    listing_id: str
    mls_number: str
    error: str


class StatusChange(WireModel):
    listing_id: str
    mls_number: str
    old_status: ListingStatus
    new_status: ListingStatus


class SyncResult(WireModel):
    total_listings: int = 0
    updated_listings: int = 0
    unpublished_posts: int = 0
    restored_listings: int = 0
    errors: list[SyncError] = Field(default_factory=list)
    status_changes: list[StatusChange] = Field(default_factory=list)

    def add(self, other: SyncResult) -> None:
        self.total_listings += other.total_listings
        self.updated_listings += other.updated_listings
        self.unpublished_posts += other.unpublished_posts
        self.restored_listings += other.restored_listings
        self.errors.extend(other.errors)
        self.status_changes.extend(other.status_changes)


class ConnectionSyncResult(SyncResult):
    """One connection's part of a user-wide sync."""

    connection_id: str
    success: bool
    message: str
    # True when another sync of this connection was already running: this run left it alone.
    skipped: bool = False


class AggregatedResult(SyncResult):
    """A user-wide (or cron-wide) sync: the summed totals plus one result per connection."""

    connections: list[ConnectionSyncResult] = Field(default_factory=list)
    skipped_connections: int = 0


DataT = TypeVar("DataT", bound=BaseModel)


class SyncActionResponse(WireModel, Generic[DataT]):
    success: bool
    message: str
    data: DataT | None = None


class QueuedRun(WireModel):
    """A deferred sync's answer (`MLS_SYNC_EXECUTOR=procrastinate`): the id of the run row a
    worker fills, which `GET /api/sync-runs/{id}` shows."""

    run_id: str
    state: str = "queued"
