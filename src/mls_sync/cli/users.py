"""`mls-sync users`: users and their API keys (a new key is printed once: only its hash
is stored)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mls_sync.cli.support import JsonFlag, err, fields_of, print_json, show, with_runtime
from mls_sync.runtime import Runtime
from mls_sync.services import users

users_app = typer.Typer(help="Users and their API keys.", no_args_is_help=True)
USER_FIELDS = ("id", "email", "created_at")


@users_app.command("add")
def users_add(email: str, as_json: JsonFlag = False) -> None:
    """Create a user and print their API key (once: only its hash is stored)."""

    async def work(runtime: Runtime) -> tuple[dict[str, Any], str]:
        async with runtime.db.transaction() as session:
            user, key = await users.add_user(session, email)
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
            found = await users.find_user(session, user)
            key = await users.issue_api_key(session, found)
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
            return [fields_of(u, USER_FIELDS) for u in await users.list_users(session)]

    rows = with_runtime(work)
    show("Users", rows, USER_FIELDS, as_json)
