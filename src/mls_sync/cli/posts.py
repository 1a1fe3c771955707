"""`mls-sync posts`: published posts of listings, registered so that a sale takes them down."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mls_sync.cli.support import (
    JsonFlag,
    UserOption,
    fields_of,
    show,
    show_for_user,
    with_runtime,
)
from mls_sync.runtime import Runtime
from mls_sync.services import posts
from mls_sync.services.platforms import Platform

posts_app = typer.Typer(help="Published posts of listings.", no_args_is_help=True)
POST_FIELDS = ("id", "listing_id", "platform", "platform_post_id", "status", "last_error")


@posts_app.command("add")
def posts_add(
    listing_id: str, platform: Platform, platform_post_id: str, as_json: JsonFlag = False
) -> None:
    """Register a published post (the platform's own id) so a sale takes it down."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.db.transaction() as session:
            post = await posts.add_post(
                session,
                listing_id,
                user_id=None,
                platform=platform,
                platform_post_id=platform_post_id,
            )
            return fields_of(post, POST_FIELDS)

    row = with_runtime(work)
    show("Post registered", row, POST_FIELDS, as_json)


@posts_app.command("list")
def posts_list(
    user: UserOption,
    listing: Annotated[str | None, typer.Option(help="only this listing")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """The user's posts and whether each is still published."""

    show_for_user(
        user,
        lambda uow, user_id: posts.list_posts(uow, user_id, listing_id=listing, limit=limit),
        title="Posts",
        columns=POST_FIELDS,
        as_json=as_json,
    )
