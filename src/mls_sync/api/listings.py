"""The caller's listings: import from the MLS by agent or office, register one, list them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from mls_sync.api.deps import CurrentUser, OwnedListing, RuntimeDep, SessionDep, looks_like_id
from mls_sync.api.schemas import (
    ErrorOut,
    Id,
    ImportOut,
    ListingImport,
    ListingOut,
    ListingRegister,
    Responses,
    SkippedListing,
)
from mls_sync.domain.errors import CONNECTION_NOT_FOUND, NotFound
from mls_sync.domain.status import ListingStatus
from mls_sync.services import listings

router = APIRouter(tags=["listings"])
_MLS_ERRORS: Responses = {
    404: {"model": ErrorOut},
    409: {"model": ErrorOut, "description": "the feed has not finished its first load"},
    502: {"model": ErrorOut, "description": "the MLS connection needs re-authentication"},
}


@router.post(
    "/api/mls-connections/{connection_id}/listings/import",
    response_model=ImportOut,
    responses=_MLS_ERRORS,
)
async def import_listings(
    connection_id: str, body: ListingImport, user: CurrentUser, runtime: RuntimeDep
) -> ImportOut:
    """Import every listing of an agent (`agentMlsId`) and/or an office (`officeMlsId`;
    neither: the connection's own) that the connection does not hold yet, at the status the
    feed gives them. Read from the feed's local replica, without an MLS request; 409 until the
    feed has finished its first load."""
    if not looks_like_id(connection_id):
        raise NotFound(CONNECTION_NOT_FOUND)
    report = await listings.import_listings(
        runtime.engine,
        connection_id,
        user_id=user.id,
        agent_mls_id=body.agent_mls_id,
        office_mls_id=body.office_mls_id,
    )
    return ImportOut(
        imported=len(report.imported),
        already_present=report.already_present,
        skipped=[SkippedListing(listing_key=k, error=e) for k, e in report.skipped],
        listings=[ListingOut.model_validate(listing) for listing in report.imported],
    )


@router.post(
    "/api/listings",
    response_model=ListingOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_MLS_ERRORS,
        409: {"model": ErrorOut, "description": "held already, or the feed is still loading"},
    },
)
async def register_listing(
    body: ListingRegister, user: CurrentUser, runtime: RuntimeDep
) -> ListingOut:
    """Register one listing of a connection by its ListingKey. Without `mlsNumber` and
    `status`, they are read from the feed's replica (which must have the listing; 409 until
    the feed has finished its first load)."""
    listing = await listings.register_listing(
        runtime.engine,
        body.mls_connection_id,
        user_id=user.id,
        listing_key=body.listing_key,
        mls_number=body.mls_number,
        status=body.status,
    )
    return ListingOut.model_validate(listing)


@router.get("/api/listings", response_model=list[ListingOut])
async def list_listings(
    user: CurrentUser,
    session: SessionDep,
    mls_connection_id: Annotated[Id | None, Query(alias="mlsConnectionId")] = None,
    listing_status: Annotated[ListingStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[ListingOut]:
    """The caller's listings with their current status, oldest first."""
    found = await listings.list_listings(
        session,
        user.id,
        connection_id=mls_connection_id,
        status=listing_status,
        limit=limit,
        offset=offset,
    )
    return [ListingOut.model_validate(listing) for listing in found]


@router.get(
    "/api/listings/{listing_id}", response_model=ListingOut, responses={404: {"model": ErrorOut}}
)
async def get_listing(listing: OwnedListing) -> ListingOut:
    return ListingOut.model_validate(listing)
