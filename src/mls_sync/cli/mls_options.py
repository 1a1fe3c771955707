"""Options and parsing the commands that take MLS credentials share (`connections`, `feeds`).
Secrets come from options, the environment or a hidden prompt, and are never printed."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from mls_sync.cli.support import fail
from mls_sync.services.feeds import PROVIDERS, MlsCredentials

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
NameOption = Annotated[str | None, typer.Option(help="a name to tell it by")]
BaseUrlOption = Annotated[str | None, typer.Option(help="RESO Web API root (where /Property is)")]
ProviderOption = Annotated[str, typer.Option(help=f"vendor profile: one of {', '.join(PROVIDERS)}")]
AUTH_KIND_HELP = "bearer, oauth2 (client credentials), oauth2_refresh or oauth2_password"
AuthKindOption = Annotated[str, typer.Option(help=AUTH_KIND_HELP)]
RefreshTokenOption = Annotated[
    str | None,
    typer.Option(
        help="a signed-in user's refresh token (oauth2_refresh; or env MLS_REFRESH_TOKEN)",
        envvar="MLS_REFRESH_TOKEN",
    ),
]
UsernameOption = Annotated[str | None, typer.Option(help="the member's MLS id (oauth2_password)")]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        help="the member's password (oauth2_password; or env MLS_PASSWORD; prompted)",
        envvar="MLS_PASSWORD",
    ),
]
ClientIdOption = Annotated[str | None, typer.Option(help="OAuth2 client id (auth kind oauth2)")]
TokenUrlOption = Annotated[
    str | None, typer.Option(help="OAuth2 token endpoint, where the profile has none")
]
ScopeOption = Annotated[str | None, typer.Option(help="OAuth2 scope, when the MLS asks for one")]
KeyFieldOption = Annotated[
    str | None, typer.Option(help="ListingKey or ListingId (default: the vendor profile's)")
]
ProfileOption = Annotated[list[str] | None, typer.Option(help="profile override KEY=VALUE")]


def credentials(
    auth_kind: str,
    token: str | None,
    client_id: str | None,
    client_secret: str | None,
    token_url: str | None,
    scope: str | None,
    *,
    prompt: bool,
    refresh_token: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> MlsCredentials:
    if auth_kind == "bearer" and not token and prompt:
        token = typer.prompt("MLS bearer token", hide_input=True)
    if auth_kind == "oauth2" and not client_secret and client_id and prompt:
        client_secret = typer.prompt("OAuth2 client secret", hide_input=True)
    if auth_kind == "oauth2_refresh" and not refresh_token and prompt:
        refresh_token = typer.prompt("MLS refresh token", hide_input=True)
    if auth_kind == "oauth2_password" and username and not password and prompt:
        password = typer.prompt("MLS password", hide_input=True)
    return MlsCredentials(
        auth_kind=auth_kind,
        token=token,
        client_id=client_id,
        client_secret=client_secret,
        token_url=token_url,
        scope=scope,
        refresh_token=refresh_token,
        username=username,
        password=password,
    )


def profile_pairs(pairs: list[str]) -> dict[str, Any]:
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
