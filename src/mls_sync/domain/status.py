"""Our listing statuses."""

from enum import StrEnum


class ListingStatus(StrEnum):
    COMING_SOON = "coming_soon"
    ACTIVE = "active"
    PENDING = "pending"
    SOLD = "sold"
    OFF_MARKET = "off_market"


class PostStatus(StrEnum):
    PUBLISHED = "published"
    UNPUBLISHED = "unpublished"
    UNPUBLISH_FAILED = "unpublish_failed"


class ConnectionState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    ERROR = "error"
