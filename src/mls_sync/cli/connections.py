"""`mls-sync connections`: a user's MLS connections: a membership of a shared feed
(`--feed`), or a connection with credentials of the user's own (a private feed)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mls_sync.cli import mls_options as opt
from mls_sync.cli.support import (
    JsonFlag,
    UserOption,
    err,
    fail,
    fields_of,
    list_command,
    save_for_user,
    show,
    with_runtime,
)
from mls_sync.runtime import Runtime
from mls_sync.services import connections
from mls_sync.services.connections import ConnectionView
from mls_sync.services.records import UnitOfWork

connections_app = typer.Typer(help="A user's MLS connections.", no_args_is_help=True)
CONNECTION_FIELDS = (
    "id",
    "name",
    "feed_id",
    "shared_feed",
    "agent_mls_id",
    "office_mls_id",
    "provider",
    "base_url",
    "key_field",
    "state",
    "state_message",
    "last_sync_at",
)
AgentOption = Annotated[str | None, typer.Option("--agent", help="the user's ListAgentMlsId")]
OfficeOption = Annotated[str | None, typer.Option("--office", help="the user's ListOfficeMlsId")]


@connections_app.command("add")
def connections_add(
    user: UserOption,
    feed: Annotated[
        str | None, typer.Option(help="a shared feed's id (mls-sync feeds list): no credentials")
    ] = None,
    base_url: opt.BaseUrlOption = None,
    name: Annotated[str, typer.Option(help="a name to tell the connection by")] = "",
    agent: AgentOption = None,
    office: OfficeOption = None,
    provider: opt.ProviderOption = "generic",
    auth_kind: opt.AuthKindOption = "bearer",
    token: opt.TokenOption = None,
    client_id: opt.ClientIdOption = None,
    client_secret: opt.ClientSecretOption = None,
    token_url: opt.TokenUrlOption = None,
    scope: opt.ScopeOption = None,
    refresh_token: opt.RefreshTokenOption = None,
    username: opt.UsernameOption = None,
    password: opt.PasswordOption = None,
    key_field: opt.KeyFieldOption = None,
    profile: opt.ProfileOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Connect a user to an MLS: join a shared feed (`--feed`), or connect with the user's own
    credentials (`--base-url` and a token, an OAuth2 client, a refresh token or a member's
    login), stored encrypted."""
    if feed is None and base_url is None:
        fail("give --feed (a shared feed) or --base-url with the user's own credentials", 2)
    credentials = None
    if feed is None:
        credentials = opt.credentials(
            auth_kind,
            token,
            client_id,
            client_secret,
            token_url,
            scope,
            prompt=True,
            refresh_token=refresh_token,
            username=username,
            password=password,
        )
    overrides = opt.profile_pairs(profile or [])

    async def connect(runtime: Runtime, session: UnitOfWork, user_id: str) -> ConnectionView:
        return await connections.create_connection(
            session,
            runtime.cipher,
            egress=runtime.settings.egress_policy,
            user_id=user_id,
            feed_id=feed,
            base_url=base_url,
            credentials=credentials,
            name=name,
            agent_mls_id=agent,
            office_mls_id=office,
            provider=provider,
            key_field=key_field,
            profile_overrides=overrides,
        )

    save_for_user(
        user, connect, title="MLS connection added", columns=CONNECTION_FIELDS, as_json=as_json
    )


list_command(
    connections_app,
    connections.list_connections,
    title="MLS connections",
    columns=CONNECTION_FIELDS,
    help="The user's MLS connections (credentials are never shown).",
)


@connections_app.command("update")
def connections_update(
    connection_id: str,
    name: opt.NameOption = None,
    agent: AgentOption = None,
    office: OfficeOption = None,
    base_url: opt.BaseUrlOption = None,
    auth_kind: Annotated[str | None, typer.Option(help=opt.AUTH_KIND_HELP)] = None,
    token: opt.TokenOption = None,
    client_id: opt.ClientIdOption = None,
    client_secret: opt.ClientSecretOption = None,
    token_url: opt.TokenUrlOption = None,
    scope: opt.ScopeOption = None,
    refresh_token: opt.RefreshTokenOption = None,
    username: opt.UsernameOption = None,
    password: opt.PasswordOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Rename, change the agent or office, or (on the user's own credentials) move or
    re-authenticate (new credentials make the connection active again)."""
    new_credentials = any(
        (auth_kind, token, client_id, client_secret, token_url, scope, refresh_token, username)
    )

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.db.transaction() as session:
            connection = await connections.get_connection(session, connection_id, user_id=None)
            credentials = None
            if new_credentials:
                kind = auth_kind or connection.auth_kind
                credentials = opt.credentials(
                    kind,
                    token,
                    client_id,
                    client_secret,
                    token_url,
                    scope,
                    prompt=False,
                    refresh_token=refresh_token,
                    username=username,
                    password=password,
                )
            updated = await connections.update_connection(
                session,
                runtime.cipher,
                connection_id,
                egress=runtime.settings.egress_policy,
                user_id=None,
                name=name,
                agent_mls_id=agent,
                office_mls_id=office,
                base_url=base_url,
                credentials=credentials,
            )
            return fields_of(updated, CONNECTION_FIELDS)

    row = with_runtime(work)
    show("MLS connection updated", row, CONNECTION_FIELDS, as_json)


@connections_app.command("remove")
def connections_remove(
    connection_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a connection with its listings, their history and posts."""
    if not yes:
        typer.confirm(f"Delete MLS connection {connection_id} and all its listings?", abort=True)

    async def work(runtime: Runtime) -> None:
        await connections.remove_connection(runtime.engine, connection_id, user_id=None)

    with_runtime(work)
    err.print(f"Deleted MLS connection {connection_id}")
