"""`mls-sync feeds`: the operator's MLS feeds (one MLS as one vendor credential sees it,
replicated once for every connection that joins it)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mls_sync.cli import mls_options as opt
from mls_sync.cli.support import JsonFlag, err, print_json, show, sync_progress, with_runtime
from mls_sync.cli.sync import print_response
from mls_sync.runtime import Runtime
from mls_sync.services import feeds
from mls_sync.services import sync as sync_service
from mls_sync.services.feeds import FeedSettings, FeedView

feeds_app = typer.Typer(help="The operator's MLS feeds.", no_args_is_help=True)
FEED_FIELDS = (
    "id",
    "name",
    "shared",
    "provider",
    "state",
    "cadence_seconds",
    "members",
    "records",
    "loaded_at",
    "suspended_until",
)
CadenceOption = Annotated[
    int | None, typer.Option(help="seconds between runs: 60 to 86400 (default 900)")
]


def _row(view: FeedView) -> dict[str, Any]:
    return {name: getattr(view, name) for name in FEED_FIELDS}


@feeds_app.command("add")
def feeds_add(
    base_url: Annotated[str, typer.Option(help="RESO Web API root (where /Property is)")],
    name: Annotated[str, typer.Option(help="a name to tell the feed by")] = "",
    provider: opt.ProviderOption = "generic",
    auth_kind: opt.AuthKindOption = "bearer",
    token: opt.TokenOption = None,
    client_id: opt.ClientIdOption = None,
    client_secret: opt.ClientSecretOption = None,
    token_url: opt.TokenUrlOption = None,
    scope: opt.ScopeOption = None,
    key_field: opt.KeyFieldOption = None,
    profile: opt.ProfileOption = None,
    cadence: CadenceOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a shared feed with the vendor credential the MLS issued to us; users join it with
    `connections add --feed ID`."""
    settings = FeedSettings(
        base_url=base_url,
        credentials=opt.credentials(
            auth_kind, token, client_id, client_secret, token_url, scope, prompt=True
        ),
        name=name,
        provider=provider,
        key_field=key_field,
        profile_overrides=opt.profile_pairs(profile or []),
        cadence_seconds=cadence or feeds.DEFAULT_CADENCE_SECONDS,
    )

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.db.transaction() as session:
            feed = await feeds.add_feed(
                session,
                runtime.cipher,
                settings,
                owner_user_id=None,
                egress=runtime.settings.egress_policy,
            )
            return _row(await feeds.view(session, feed))

    show("MLS feed added", with_runtime(work), FEED_FIELDS, as_json)


@feeds_app.command("list")
def feeds_list(as_json: JsonFlag = False) -> None:
    """Every feed: the shared ones and users' private ones (credentials are never shown)."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.db.transaction() as session:
            return [_row(view) for view in await feeds.list_feeds(session)]

    show("MLS feeds", with_runtime(work), FEED_FIELDS, as_json)


@feeds_app.command("update")
def feeds_update(
    feed_id: str,
    name: opt.NameOption = None,
    base_url: opt.BaseUrlOption = None,
    auth_kind: Annotated[str | None, typer.Option(help=opt.AUTH_KIND_HELP)] = None,
    token: opt.TokenOption = None,
    client_id: opt.ClientIdOption = None,
    client_secret: opt.ClientSecretOption = None,
    token_url: opt.TokenUrlOption = None,
    scope: opt.ScopeOption = None,
    cadence: CadenceOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Rename, move, re-authenticate (an expired feed and its connections become active
    again) or change the cadence."""
    new_credentials = any((auth_kind, token, client_id, client_secret, token_url, scope))

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.db.transaction() as session:
            feed = await feeds.get_feed(session, feed_id)
            credentials = None
            if new_credentials:
                credentials = opt.credentials(
                    auth_kind or feed.auth_kind,
                    token,
                    client_id,
                    client_secret,
                    token_url,
                    scope,
                    prompt=False,
                )
            await feeds.update_feed(
                session,
                runtime.cipher,
                feed,
                egress=runtime.settings.egress_policy,
                name=name,
                base_url=base_url,
                credentials=credentials,
                cadence_seconds=cadence,
            )
            return _row(await feeds.view(session, feed))

    show("MLS feed updated", with_runtime(work), FEED_FIELDS, as_json)


@feeds_app.command("remove")
def feeds_remove(
    feed_id: str,
    force: Annotated[
        bool, typer.Option(help="also delete its connections, their listings and posts")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a feed and its replica (refused while connections use it, unless --force)."""
    if not yes:
        typer.confirm(f"Delete MLS feed {feed_id}?", abort=True)

    async def work(runtime: Runtime) -> None:
        await feeds.remove_feed(runtime.engine, feed_id, force=force)

    with_runtime(work)
    err.print(f"Deleted MLS feed {feed_id}")


@feeds_app.command("sync")
def feeds_sync(
    feed_id: str,
    full: Annotated[bool, typer.Option(help="reconcile the feed too")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run one feed now for every connection in it (its first load shows a progress bar of
    the records loaded; an interrupted load resumes where it stopped)."""

    async def work(runtime: Runtime) -> Any:
        with sync_progress("Replicating the feed", quiet=as_json) as advance:
            return await sync_service.sync_feed(
                runtime.engine, feed_id, trigger="cli", progress=advance, full=full or None
            )

    response = with_runtime(work, quiet=as_json)
    if as_json:
        print_json(response.to_wire())
    else:
        print_response(response)
    raise typer.Exit(0 if response.success else 1)
