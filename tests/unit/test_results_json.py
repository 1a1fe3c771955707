"""The response format of the product spec, camelCase on the wire."""

from mls_sync.domain.results import (
    AggregatedResult,
    StatusChange,
    SyncActionResponse,
    SyncError,
    SyncResult,
)
from mls_sync.domain.status import ListingStatus as S


def test_sync_result_serialises_to_the_exact_camel_case_shape() -> None:
    result = SyncResult(
        total_listings=2,
        updated_listings=1,
        unpublished_posts=3,
        restored_listings=0,
        errors=[SyncError(listing_id="l2", mls_number="MLS-2", error="Listing not found in MLS")],
        status_changes=[
            StatusChange(
                listing_id="l1", mls_number="MLS-1", old_status=S.ACTIVE, new_status=S.SOLD
            )
        ],
    )
    wire = SyncActionResponse[SyncResult](success=True, message="ok", data=result).to_wire()
    assert wire == {
        "success": True,
        "message": "ok",
        "data": {
            "totalListings": 2,
            "updatedListings": 1,
            "unpublishedPosts": 3,
            "restoredListings": 0,
            "errors": [
                {"listingId": "l2", "mlsNumber": "MLS-2", "error": "Listing not found in MLS"}
            ],
            "statusChanges": [
                {
                    "listingId": "l1",
                    "mlsNumber": "MLS-1",
                    "oldStatus": "active",
                    "newStatus": "sold",
                }
            ],
        },
    }


def test_aggregated_result_adds_totals_and_lists_connections() -> None:
    total = AggregatedResult()
    total.add(SyncResult(total_listings=2, updated_listings=1, unpublished_posts=2))
    total.add(SyncResult(total_listings=3, restored_listings=1))
    wire = total.to_wire()
    assert (wire["totalListings"], wire["updatedListings"], wire["restoredListings"]) == (5, 1, 1)
    assert wire["unpublishedPosts"] == 2
    assert wire["connections"] == []


def test_failed_response_may_carry_no_data() -> None:
    wire = SyncActionResponse[SyncResult](
        success=False, message="MLS connection not found"
    ).to_wire()
    assert wire == {"success": False, "message": "MLS connection not found", "data": None}
