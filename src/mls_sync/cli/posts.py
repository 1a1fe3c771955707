"""`mls-sync posts`: published posts of listings, registered so that a sale takes them down."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mls_sync.cli.support import (
    JsonFlag,
    UserOption,
    fields_of,
    print_json,
    print_rows,
    with_runtime,
)
from mls_sync.runtime import Runtime
from mls_sync.services import posts, users
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
    print_json(row) if as_json else print_rows("Post registered", [row], POST_FIELDS)


@posts_app.command("list")
def posts_list(
    user: UserOption,
    listing: Annotated[str | None, typer.Option(help="only this listing")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """The user's posts and whether each is still published."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.db.transaction() as session:
            owner = await users.find_user(session, user)
            found = await posts.list_posts(session, owner.id, listing_id=listing, limit=limit)
            return [fields_of(post, POST_FIELDS) for post in found]

    rows = with_runtime(work)
    print_json(rows) if as_json else print_rows("Posts", rows, POST_FIELDS)
