"""The caller's published posts: register one so the sync can take it down, list them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from mls_sync.api.deps import CurrentUser, SessionDep
from mls_sync.api.schemas import ErrorOut, Id, PostCreate, PostOut
from mls_sync.services import posts

router = APIRouter(prefix="/api/posts", tags=["posts"])


@router.post(
    "",
    response_model=PostOut,
    status_code=status.HTTP_201_CREATED,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def add_post(body: PostCreate, user: CurrentUser, session: SessionDep) -> PostOut:
    """Register a published post (the platform's own post id) of one of the caller's listings."""
    post = await posts.add_post(
        session,
        body.listing_id,
        user_id=user.id,
        platform=body.platform,
        platform_post_id=body.platform_post_id,
    )
    return PostOut.model_validate(post)


@router.get("", response_model=list[PostOut])
async def list_posts(
    user: CurrentUser,
    session: SessionDep,
    listing_id: Annotated[Id | None, Query(alias="listingId")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[PostOut]:
    """The caller's posts with their status (`published`, `unpublished`, `unpublish_failed`)."""
    found = await posts.list_posts(
        session, user.id, listing_id=listing_id, limit=limit, offset=offset
    )
    return [PostOut.model_validate(post) for post in found]
