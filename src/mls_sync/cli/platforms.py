"""`mls-sync platforms`: a user's platform tokens (stored encrypted, never printed)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from mls_sync.cli.support import JsonFlag, UserOption, list_command, save_for_user
from mls_sync.runtime import Runtime
from mls_sync.services import platforms
from mls_sync.services.platforms import Login, Platform
from mls_sync.services.records import PlatformConnection, UnitOfWork

platforms_app = typer.Typer(help="A user's platform tokens.", no_args_is_help=True)
PLATFORM_FIELDS = ("id", "platform", "login", "state", "state_message", "expires_at")


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

    async def store(runtime: Runtime, session: UnitOfWork, user_id: str) -> PlatformConnection:
        return await platforms.set_platform_connection(
            session,
            runtime.cipher,
            user_id=user_id,
            platform=platform,
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=expires_at,
            login=login,
        )

    save_for_user(
        user, store, title="Platform connection", columns=PLATFORM_FIELDS, as_json=as_json
    )


list_command(
    platforms_app,
    platforms.list_platform_connections,
    title="Platform connections",
    columns=PLATFORM_FIELDS,
    help="The user's platform connections (tokens are never shown).",
)
