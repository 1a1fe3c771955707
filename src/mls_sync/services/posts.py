"""Published posts of a user's listings: registered so that a sale takes them down."""

from __future__ import annotations

from collections.abc import Sequence

from mls_sync.domain.errors import Conflict
from mls_sync.services.listings import get_listing
from mls_sync.services.records import Post, UnitOfWork
from mls_sync.social.base import Platform
from mls_sync.store import repositories as repo


class PostExistsError(Conflict):
    """The listing already has this platform's post with this id."""


async def add_post(
    uow: UnitOfWork,
    listing_id: str,
    *,
    user_id: str | None,
    platform: Platform,
    platform_post_id: str,
) -> Post:
    """A post that is published on the platform, so the sync can take it down when sold."""
    listing = await get_listing(uow, listing_id, user_id=user_id)
    for post in await uow.posts.of_listing(listing.id):
        if post.platform == platform.value and post.platform_post_id == platform_post_id:
            raise PostExistsError("This post is registered already")
    return await repo.add_post(
        uow, listing=listing, platform=platform.value, platform_post_id=platform_post_id
    )


async def list_posts(
    uow: UnitOfWork,
    user_id: str,
    *,
    listing_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Post]:
    return await uow.posts.of_user(user_id, listing_id=listing_id, limit=limit, offset=offset)
