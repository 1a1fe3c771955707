"""The three user-facing operations return the product spec's response format, and a user can
touch only their own connections and listings."""

from __future__ import annotations

from factories import seed_connection, seed_posts, seed_user
from mls_sync.actions import sync_all_mls_connections, sync_listing_status, sync_mls_status
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox

RESULT_KEYS = {
    "totalListings",
    "updatedListings",
    "unpublishedPosts",
    "restoredListings",
    "errors",
    "statusChanges",
}


async def test_sync_mls_status_answers_in_the_spec_format(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, platforms: PlatformSandbox
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.PENDING})
    await seed_posts(runtime, platforms, seeded.listings["K1"], ("facebook", "x"))
    reso.set_status("K1", "Closed")
    reso.set_status("K2", "Active")

    wire = (await sync_mls_status(seeded.connection_id, engine=runtime.engine)).to_wire()

    assert set(wire) == {"success", "message", "data"}
    assert wire["success"] is True
    assert set(wire["data"]) == RESULT_KEYS
    data = wire["data"]
    assert (data["totalListings"], data["updatedListings"]) == (2, 2)
    assert (data["unpublishedPosts"], data["restoredListings"]) == (2, 1)
    assert sorted(data["statusChanges"], key=lambda c: c["mlsNumber"]) == [
        {
            "listingId": seeded.listings["K1"].id,
            "mlsNumber": "MLS-K1",
            "oldStatus": "active",
            "newStatus": "sold",
        },
        {
            "listingId": seeded.listings["K2"].id,
            "mlsNumber": "MLS-K2",
            "oldStatus": "pending",
            "newStatus": "active",
        },
    ]


async def test_sync_all_connections_sums_totals_and_lists_each_connection(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    user_id = await seed_user(runtime)
    first = await seed_connection(runtime, reso, reso_url, {"A1": S.ACTIVE}, user_id=user_id)
    second = await seed_connection(
        runtime, reso, reso_url, {"B1": S.ACTIVE, "B2": S.ACTIVE}, user_id=user_id
    )
    reso.set_status("A1", "Pending")
    reso.set_status("B2", "Pending")

    wire = (await sync_all_mls_connections(user_id, engine=runtime.engine)).to_wire()

    assert wire["success"] is True
    data = wire["data"]
    assert set(data) >= RESULT_KEYS
    assert (data["totalListings"], data["updatedListings"]) == (3, 2)
    by_connection = {c["connectionId"]: c for c in data["connections"]}
    assert set(by_connection) == {first.connection_id, second.connection_id}
    assert by_connection[second.connection_id]["totalListings"] == 2
    assert by_connection[second.connection_id]["success"] is True


async def test_sync_listing_status_answers_in_the_spec_format(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.set_status("K1", "Pending")

    wire = (await sync_listing_status(seeded.listings["K1"].id, engine=runtime.engine)).to_wire()

    assert wire["success"] is True
    assert set(wire["data"]) == RESULT_KEYS
    assert wire["data"]["totalListings"] == 1
    assert wire["data"]["statusChanges"][0]["newStatus"] == "pending"


async def test_another_users_ids_answer_exactly_like_missing_ones(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    owner = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    intruder = await seed_user(runtime, "intruder@example.com")
    reso.set_status("K1", "Closed")

    theirs = await sync_mls_status(owner.connection_id, engine=runtime.engine, user_id=intruder)
    missing = await sync_mls_status("no-such-id", engine=runtime.engine, user_id=intruder)
    their_listing = await sync_listing_status(
        owner.listings["K1"].id, engine=runtime.engine, user_id=intruder
    )
    missing_listing = await sync_listing_status("nope", engine=runtime.engine, user_id=intruder)

    assert (
        theirs.to_wire()
        == missing.to_wire()
        == {
            "success": False,
            "message": "MLS connection not found",
            "data": None,
        }
    )
    assert their_listing.to_wire() == missing_listing.to_wire()
    assert reso.request_count == 0  # nothing was synced on the intruder's behalf


async def test_expired_connection_reports_the_reauthenticate_message(
    runtime: Runtime, reso: ResoSandbox, reso_url: str
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE})
    reso.revoke_token("mls-token")

    wire = (await sync_mls_status(seeded.connection_id, engine=runtime.engine)).to_wire()

    assert wire["success"] is False
    assert wire["message"] == "MLS connection expired. Please re-authenticate."
    assert wire["data"]["updatedListings"] == 0


async def test_unknown_user_is_not_found(runtime: Runtime) -> None:
    wire = (await sync_all_mls_connections("nobody", engine=runtime.engine)).to_wire()
    assert wire == {"success": False, "message": "User not found", "data": None}
