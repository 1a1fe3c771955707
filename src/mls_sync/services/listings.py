"""A user's listings: import them from the feed's replica by agent or office, register one,
list them."""

from __future__ import annotations

from collections.abc import Sequence

from mls_sync.domain.errors import LISTING_NOT_FOUND, NotFound
from mls_sync.domain.status import ListingStatus
from mls_sync.services.records import Listing, UnitOfWork
from mls_sync.store import repositories as repo
from mls_sync.sync.importer import (
    FeedNotLoadedError,
    ImportReport,
    ListingExistsError,
    ListingRejectedError,
    import_listings,
    register_listing,
)

__all__ = [
    "FeedNotLoadedError",
    "ImportReport",
    "ListingExistsError",
    "ListingRejectedError",
    "get_listing",
    "import_listings",
    "list_listings",
    "register_listing",
]


async def get_listing(uow: UnitOfWork, listing_id: str, *, user_id: str | None) -> Listing:
    """The listing; another user's answers exactly like a missing one."""
    found = await repo.get_listing(uow, listing_id, user_id=user_id)
    if found is None:
        raise NotFound(LISTING_NOT_FOUND)
    return found


async def list_listings(
    uow: UnitOfWork,
    user_id: str,
    *,
    connection_id: str | None = None,
    status: ListingStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Listing]:
    """The user's listings with their current status, oldest first."""
    return await uow.listings.of_user(
        user_id, connection_id=connection_id, status=status, limit=limit, offset=offset
    )
