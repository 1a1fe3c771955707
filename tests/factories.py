"""Small async factories that put the same listing in the sandbox MLS and in our database."""

from __future__ import annotations

from dataclasses import dataclass, field

from mls_sync.domain.status import ListingStatus
from mls_sync.runtime import Runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store import repositories as repo
from mls_sync.store.models import Listing

RESO_STATUS = {
    ListingStatus.COMING_SOON: "ComingSoon",
    ListingStatus.ACTIVE: "Active",
    ListingStatus.PENDING: "Pending",
    ListingStatus.SOLD: "Closed",
    ListingStatus.OFF_MARKET: "Withdrawn",
}


@dataclass
class Seeded:
    user_id: str
    connection_id: str
    listings: dict[str, Listing] = field(default_factory=dict)  # by listing key


async def seed_user(runtime: Runtime, email: str = "agent@example.com") -> str:
    async with runtime.db.transaction() as session:
        return (await repo.create_user(session, email)).id


async def seed_connection(
    runtime: Runtime,
    reso: ResoSandbox,
    reso_url: str,
    statuses: dict[str, ListingStatus],
    *,
    user_id: str | None = None,
    token: str = "mls-token",
    key_field: str = "ListingKey",
    in_mls: bool = True,
) -> Seeded:
    """A connection holding one listing per key, each present in the MLS with the same status."""
    user_id = user_id or await seed_user(runtime)
    async with runtime.db.transaction() as session:
        connection = await repo.create_mls_connection(
            session,
            runtime.cipher,
            user_id=user_id,
            base_url=reso_url,
            token=token,
            key_field=key_field,
        )
        seeded = Seeded(user_id=user_id, connection_id=connection.id)
        for key, status in statuses.items():
            mls_number = f"MLS-{key}"
            if in_mls:
                reso.add_listing(key, mls_number, RESO_STATUS[status])
            seeded.listings[key] = await repo.add_listing(
                session,
                connection=connection,
                listing_key=key,
                mls_number=mls_number,
                status=status,
            )
    return seeded


async def seed_posts(
    runtime: Runtime,
    platforms: PlatformSandbox,
    listing: Listing,
    on: tuple[str, ...],
    *,
    connect: bool = True,
    exists_on_platform: bool = True,
) -> list[str]:
    """Published posts of the listing on these platforms (existing on the sandbox), and, with
    `connect`, the user's platform connections; returns the post ids."""
    ids = []
    async with runtime.db.transaction() as session:
        for platform in on:
            token = f"{platform}-token"
            if connect:
                platforms.add_token(platform, token)
                await repo.upsert_platform_connection(
                    session,
                    runtime.cipher,
                    user_id=listing.user_id,
                    platform=platform,
                    access_token=token,
                )
            post_id = f"{platform}-{listing.listing_key}"
            if platform == "linkedin":
                post_id = f"urn:li:share:{abs(hash(listing.listing_key)) % 10**12}"
            if exists_on_platform:
                platforms.add_post(platform, post_id)
            post = await repo.add_post(
                session, listing=listing, platform=platform, platform_post_id=post_id
            )
            ids.append(post.id)
    return ids
