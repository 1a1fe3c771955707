"""`mls-sync connections`: a user's MLS connections. Secrets come from options, the
environment or a hidden prompt, are stored encrypted and never printed."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

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
from mls_sync.services.connections import MlsCredentials
from mls_sync.services.records import MlsConnection, UnitOfWork

connections_app = typer.Typer(help="A user's MLS connections.", no_args_is_help=True)
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


NameOption = Annotated[str | None, typer.Option(help="a name to tell the connection by")]
BaseUrlOption = Annotated[str | None, typer.Option(help="new RESO Web API root")]
ClientIdOption = Annotated[str | None, typer.Option(help="OAuth2 client id (auth kind oauth2)")]
TokenUrlOption = Annotated[
    str | None, typer.Option(help="OAuth2 token endpoint, where the profile has none")
]
ScopeOption = Annotated[str | None, typer.Option(help="OAuth2 scope, when the MLS asks for one")]


def _credentials(
    auth_kind: str,
    token: str | None,
    client_id: str | None,
    client_secret: str | None,
    token_url: str | None,
    scope: str | None,
    *,
    prompt: bool,
) -> MlsCredentials:
    if auth_kind == "bearer" and not token and prompt:
        token = typer.prompt("MLS bearer token", hide_input=True)
    if auth_kind == "oauth2" and not client_secret and client_id and prompt:
        client_secret = typer.prompt("OAuth2 client secret", hide_input=True)
    return MlsCredentials(
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


@connections_app.command("add")
def connections_add(
    user: UserOption,
    base_url: Annotated[str, typer.Option(help="RESO Web API root (where /Property is)")],
    name: Annotated[str, typer.Option(help="a name to tell the connection by")] = "",
    provider: Annotated[
        str, typer.Option(help=f"one of {', '.join(connections.PROVIDERS)}")
    ] = "generic",
    auth_kind: Annotated[str, typer.Option(help="bearer or oauth2")] = "bearer",
    token: TokenOption = None,
    client_id: ClientIdOption = None,
    client_secret: ClientSecretOption = None,
    token_url: TokenUrlOption = None,
    scope: ScopeOption = None,
    key_field: Annotated[str, typer.Option(help="ListingKey or ListingId")] = "ListingKey",
    profile: Annotated[list[str] | None, typer.Option(help="profile override KEY=VALUE")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Connect a user to an MLS; the credentials are stored encrypted."""
    credentials = _credentials(
        auth_kind, token, client_id, client_secret, token_url, scope, prompt=True
    )
    overrides = _profile(profile or [])

    async def connect(runtime: Runtime, session: UnitOfWork, user_id: str) -> MlsConnection:
        return await connections.create_connection(
            session,
            runtime.cipher,
            user_id=user_id,
            base_url=base_url,
            credentials=credentials,
            name=name,
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
    name: NameOption = None,
    base_url: BaseUrlOption = None,
    auth_kind: Annotated[str | None, typer.Option(help="bearer or oauth2")] = None,
    token: TokenOption = None,
    client_id: ClientIdOption = None,
    client_secret: ClientSecretOption = None,
    token_url: TokenUrlOption = None,
    scope: ScopeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Rename, move, or re-authenticate (new credentials make the connection active again)."""
    new_credentials = any((auth_kind, token, client_id, client_secret, token_url, scope))

    async def work(runtime: Runtime) -> dict[str, Any]:
        async with runtime.db.transaction() as session:
            connection = await connections.get_connection(session, connection_id, user_id=None)
            credentials = None
            if new_credentials:
                kind = auth_kind or connection.auth_kind
                credentials = _credentials(
                    kind, token, client_id, client_secret, token_url, scope, prompt=False
                )
            updated = await connections.update_connection(
                session,
                runtime.cipher,
                connection_id,
                user_id=None,
                name=name,
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
