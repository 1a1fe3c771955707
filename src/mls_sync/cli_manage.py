"""`mls-sync users|connections|platforms|listings|posts`: the management routes, for an
operator with access to the database. Each command is one unit of work; secrets are read from
options, the environment or a hidden prompt, and never printed (except a new API key, once)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncSession

from mls_sync import actions, management
from mls_sync.cli_support import (
    JsonFlag,
    UserOption,
    err,
    fail,
    fields_of,
    out,
    print_json,
    print_rows,
    with_runtime,
)
from mls_sync.domain.status import ListingStatus
from mls_sync.management import Login, Platform
from mls_sync.runtime import Runtime
from mls_sync.store import repositories as repo
from mls_sync.store.models import MlsConnection, User

users_app = typer.Typer(help="Users and their API keys.", no_args_is_help=True)
connections_app = typer.Typer(help="A user's MLS connections.", no_args_is_help=True)
platforms_app = typer.Typer(help="A user's platform tokens.", no_args_is_help=True)
listings_app = typer.Typer(help="A user's listings.", no_args_is_help=True)
posts_app = typer.Typer(help="Published posts of listings.", no_args_is_help=True)

SUB_APPS = {
    "users": users_app,
    "connections": connections_app,
    "platforms": platforms_app,
    "listings": listings_app,
    "posts": posts_app,
}

USER_FIELDS = ("id", "email", "created_at")
CONNECTION_FIELDS = (
    "id",
    "name",
    "provider",
    "base_url",
    "auth_kind",
    "key_field",
    "state",
    "state_message",
    "last_sync_at",
)
PLATFORM_FIELDS = ("id", "platform", "login", "state", "state_message", "expires_at")
LISTING_FIELDS = ("id", "mls_connection_id", "listing_key", "mls_number", "status", "updated_at")
POST_FIELDS = ("id", "listing_id", "platform", "platform_post_id", "status", "last_error")


async def _user(session: AsyncSession, who: str) -> User:
    user = await repo.find_user(session, who)
    if user is None:
        fail(f"No user {who!r}")
    return user


async def _connection(session: AsyncSession, connection_id: str) -> MlsConnection:
    connection = await repo.get_mls_connection(session, connection_id)
    if connection is None:
        fail("MLS connection not found")
    return connection


# users


@users_app.command("add")
def users_add(email: str, as_json: JsonFlag = False) -> None:
    """Create a user and print their API key (once: only its hash is stored)."""
    if "@" not in email or any(c.isspace() for c in email) or len(email) > 320:
        fail(f"{email!r} is not an email address", 2)

    async def work(runtime: Runtime) -> tuple[dict[str, Any], str]:
        async with runtime.db.transaction() as session:
            try:
                user, key = await management.add_user(session, email)
            except management.UserExistsError as exc:
                fail(str(exc))
            return fields_of(user, USER_FIELDS), key

    user, key = with_runtime(work)
    _print_key(user, key, as_json, verb="Created user")


@users_app.command("key")
def users_key(
    user: Annotated[str, typer.Argument(help="email or id")], as_json: JsonFlag = False
) -> None:
    """Issue a new API key for the user; the old one stops working."""

    async def work(runtime: Runtime) -> tuple[dict[str, Any], str]:
        async with runtime.db.transaction() as session:
            found = await _user(session, user)
            key = await management.issue_api_key(session, found)
            return fields_of(found, USER_FIELDS), key

    found, key = with_runtime(work)
    _print_key(found, key, as_json, verb="New API key for")


def _print_key(user: dict[str, Any], key: str, as_json: bool, *, verb: str) -> None:
    if as_json:
        print_json({**user, "api_key": key})
        return
    err.print(f"{verb} [bold]{user['email']}[/bold] ({user['id']}). API key, shown only now:")
    print(key)


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Every user (API keys are never shown)."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.db.transaction() as session:
            return [fields_of(u, USER_FIELDS) for u in await repo.list_users(session)]

    rows = with_runtime(work)
    print_json(rows) if as_json else print_rows("Users", rows, USER_FIELDS)


# MLS connections

TokenOption = Annotated[
    str | None,
    typer.Option(help="bearer token (or env MLS_TOKEN; prompted when missing)", envvar="MLS_TOKEN"),
]
ClientSecretOption = Annotated[
    str | None,
    typer.Option(
        help="OAuth2 client secret (or env MLS_CLIENT_SECRET)", envvar="MLS_CLIENT_SECRET"
    ),
]


def _credentials(
    auth_kind: str,
    token: str | None,
    client_id: str | None,
    client_secret: str | None,
    token_url: str | None,
    scope: str | None,
    *,
    prompt: bool,
) -> management.MlsCredentials:
    if auth_kind == "bearer" and not token and prompt:
        token = typer.prompt("MLS bearer token", hide_input=True)
    if auth_kind == "oauth2" and not client_secret and client_id and prompt:
        client_secret = typer.prompt("OAuth2 client secret", hide_input=True)
    return management.MlsCredentials(
        auth_kind=auth_kind,
        token=token,
        client_id=client_id,
        client_secret=client_secret,
        token_url=token_url,
        scope=scope,
    )


def _profile(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; a value that parses as JSON (numbers, true, lists) is taken as such."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--profile takes KEY=VALUE, not {pair!r}", 2)
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    return overrides


def _check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        fail("--base-url must be an http:// or https:// URL", 2)
    return url


@connections_app.command("add")
def connections_add(
    user: UserOption,
    base_url: Annotated[str, typer.Option(help="RESO Web API root (where /Property is)")],
    name: str = "",
    provider: Annotated[
        str, typer.Option(help=f"one of {', '.join(management.PROVIDERS)}")
    ] = "generic",
    auth_kind: Annotated[str, typer.Option(help="bearer or oauth2")] = "bearer",
    token: TokenOption = None,
    client_id: str | None = None,
    client_secret: ClientSecretOption = None,
    token_url: str | None = None,
    scope: str | None = None,
    key_field: Annotated[str, typer.Option(help="ListingKey or ListingId")] = "ListingKey",
    profile: Annotated[list[str] | None, typer.Option(help="profile override KEY=VALUE")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Connect a user to an MLS; the credentials are stored encrypted."""
    credentials = _credentials(
        auth_kind, token, client_id, client_secret, token_url, scope, prompt=True
    )
    overrides = _profile(profile or [])
    if key_field not in ("ListingKey", "ListingId"):
        fail("--key-field is ListingKey or ListingId", 2)

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.db.transaction() as session:
            owner = await _user(session, user)
            try:
                connection = await management.create_mls_connection(
                    session,
                    runtime.cipher,
                    user_id=owner.id,
                    base_url=_check_url(base_url),
                    credentials=credentials,
                    name=name,
                    provider=provider,
                    key_field=key_field,
                    profile_overrides=overrides,
                )
            except management.InvalidInput as exc:
                fail(f"{exc.field}: {exc.message}", 2)
            return fields_of(connection, CONNECTION_FIELDS)

    row = with_runtime(work)
    print_json(row) if as_json else print_rows("MLS connection added", [row], CONNECTION_FIELDS)


@connections_app.command("list")
def connections_list(user: UserOption, as_json: JsonFlag = False) -> None:
    """The user's MLS connections (credentials are never shown)."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.db.transaction() as session:
            owner = await _user(session, user)
            found = await repo.user_connections(session, owner.id)
            return [fields_of(c, CONNECTION_FIELDS) for c in found]

    rows = with_runtime(work)
    print_json(rows) if as_json else print_rows("MLS connections", rows, CONNECTION_FIELDS)


@connections_app.command("update")
def connections_update(
    connection_id: str,
    name: str | None = None,
    base_url: str | None = None,
    auth_kind: Annotated[str | None, typer.Option(help="bearer or oauth2")] = None,
    token: TokenOption = None,
    client_id: str | None = None,
    client_secret: ClientSecretOption = None,
    token_url: str | None = None,
    scope: str | None = None,
    as_json: JsonFlag = False,
) -> None:
    """Rename, move, or re-authenticate (new credentials make the connection active again)."""
    new_credentials = any((auth_kind, token, client_id, client_secret, token_url, scope))

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.db.transaction() as session:
            connection = await _connection(session, connection_id)
            credentials = None
            if new_credentials:
                kind = auth_kind or connection.auth_kind
                credentials = _credentials(
                    kind, token, client_id, client_secret, token_url, scope, prompt=False
                )
            try:
                await management.update_mls_connection(
                    session,
                    runtime.cipher,
                    connection,
                    name=name,
                    base_url=_check_url(base_url) if base_url is not None else None,
                    credentials=credentials,
                )
            except management.InvalidInput as exc:
                fail(f"{exc.field}: {exc.message}", 2)
            return fields_of(connection, CONNECTION_FIELDS)

    row = with_runtime(work)
    print_json(row) if as_json else print_rows("MLS connection updated", [row], CONNECTION_FIELDS)


@connections_app.command("remove")
def connections_remove(
    connection_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a connection with its listings, their history and posts."""
    if not yes:
        typer.confirm(f"Delete MLS connection {connection_id} and all its listings?", abort=True)

    async def work(runtime: Runtime) -> bool:
        async with runtime.db.transaction() as session:
            await _connection(session, connection_id)
        return await actions.remove_mls_connection(connection_id, engine=runtime.engine)

    if not with_runtime(work):
        fail(actions.SYNC_IN_PROGRESS)
    err.print(f"Deleted MLS connection {connection_id}")


# platform connections


@platforms_app.command("set")
def platforms_set(
    user: UserOption,
    platform: Platform,
    access_token: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            envvar="PLATFORM_ACCESS_TOKEN",
            help="or env PLATFORM_ACCESS_TOKEN",
        ),
    ],
    refresh_token: Annotated[
        str | None,
        typer.Option(envvar="PLATFORM_REFRESH_TOKEN", help="or env PLATFORM_REFRESH_TOKEN"),
    ] = None,
    expires_at: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%dT%H:%M:%S%z"], help="e.g. 2030-01-01T00:00:00+00:00"),
    ] = None,
    login: Annotated[
        Login | None,
        typer.Option(
            help="Instagram only: facebook (a Page token: deletes work) or instagram (default)"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store (or replace) the user's tokens for a platform, encrypted."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.db.transaction() as session:
            owner = await _user(session, user)
            try:
                connection = await management.set_platform_connection(
                    session,
                    runtime.cipher,
                    user_id=owner.id,
                    platform=platform,
                    access_token=access_token,
                    refresh_token=refresh_token,
                    expires_at=expires_at,
                    login=login,
                )
            except management.InvalidInput as exc:
                fail(f"{exc.field}: {exc.message}", 2)
            return fields_of(connection, PLATFORM_FIELDS)

    row = with_runtime(work)
    print_json(row) if as_json else print_rows("Platform connection", [row], PLATFORM_FIELDS)


@platforms_app.command("list")
def platforms_list(user: UserOption, as_json: JsonFlag = False) -> None:
    """The user's platform connections (tokens are never shown)."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.db.transaction() as session:
            owner = await _user(session, user)
            found = await repo.user_platform_connections(session, owner.id)
            return [fields_of(c, PLATFORM_FIELDS) for c in found]

    rows = with_runtime(work)
    print_json(rows) if as_json else print_rows("Platform connections", rows, PLATFORM_FIELDS)


# listings


@listings_app.command("add")
def listings_add(
    connection_id: str,
    listing_key: str,
    mls_number: Annotated[
        str | None, typer.Option(help="RESO ListingId; else read from the MLS")
    ] = None,
    status: Annotated[ListingStatus | None, typer.Option(help="else read from the MLS")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register one listing of a connection by its ListingKey."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        try:
            listing = await actions.register_listing(
                runtime.engine,
                connection_id,
                user_id=None,
                listing_key=listing_key,
                mls_number=mls_number,
                status=status,
            )
        except actions.NotFoundError as exc:
            fail(str(exc))
        except (
            actions.ListingExistsError,
            actions.ListingRejectedError,
            actions.MlsUnavailableError,
        ) as exc:
            fail(str(exc))
        return fields_of(listing, LISTING_FIELDS)

    row = with_runtime(work)
    print_json(row) if as_json else print_rows("Listing registered", [row], LISTING_FIELDS)


@listings_app.command("import")
def listings_import(
    connection_id: str,
    agent: Annotated[str | None, typer.Option(help="RESO ListAgentMlsId")] = None,
    office: Annotated[str | None, typer.Option(help="RESO ListOfficeMlsId")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import every listing of an agent and/or office that the connection does not hold yet."""
    if not agent and not office:
        fail("give --agent and/or --office", 2)

    async def work(runtime: Runtime) -> actions.ImportReport:
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]Importing listings from the MLS"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json or not err.is_terminal,
        ) as bar:
            bar.add_task("import", total=None)
            try:
                return await actions.import_listings(
                    runtime.engine,
                    connection_id,
                    user_id=None,
                    agent_mls_id=agent,
                    office_mls_id=office,
                )
            except (actions.NotFoundError, actions.MlsUnavailableError) as exc:
                fail(str(exc))

    report = with_runtime(work)
    rows = [fields_of(listing, LISTING_FIELDS) for listing in report.imported]
    summary = {
        "imported": len(report.imported),
        "already_present": report.already_present,
        "skipped": [{"listing_key": k, "error": e} for k, e in report.skipped],
    }
    if as_json:
        print_json({**summary, "listings": rows})
        return
    print_rows("Imported listings", rows, LISTING_FIELDS)
    for key, error in report.skipped:
        err.print(f"[yellow]skipped[/yellow] {key}: {error}")
    out.print(
        f"{summary['imported']} imported, {summary['already_present']} already present, "
        f"{len(report.skipped)} skipped"
    )


@listings_app.command("list")
def listings_list(
    user: UserOption,
    connection: Annotated[str | None, typer.Option(help="only this MLS connection")] = None,
    status: Annotated[ListingStatus | None, typer.Option(help="only this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """The user's listings with their current status."""

    async def work(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.db.transaction() as session:
            owner = await _user(session, user)
            found = await repo.user_listings(
                session, owner.id, connection_id=connection, status=status, limit=limit
            )
            return [fields_of(listing, LISTING_FIELDS) for listing in found]

    rows = with_runtime(work)
    print_json(rows) if as_json else print_rows("Listings", rows, LISTING_FIELDS)


# posts


@posts_app.command("add")
def posts_add(
    listing_id: str, platform: Platform, platform_post_id: str, as_json: JsonFlag = False
) -> None:
    """Register a published post (the platform's own id) so a sale takes it down."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.db.transaction() as session:
            listing = await repo.get_listing(session, listing_id)
            if listing is None:
                fail("Listing not found")
            try:
                post = await management.add_post(
                    session, listing, platform=platform, platform_post_id=platform_post_id
                )
            except management.PostExistsError as exc:
                fail(str(exc))
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
            owner = await _user(session, user)
            found = await repo.user_posts(session, owner.id, listing_id=listing, limit=limit)
            return [fields_of(post, POST_FIELDS) for post in found]

    rows = with_runtime(work)
    print_json(rows) if as_json else print_rows("Posts", rows, POST_FIELDS)
