"""`mls-sync listings`: register a listing, import an agent's or office's from the feed's local
copy, list."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from mls_sync.cli.support import (
    JsonFlag,
    UserOption,
    err,
    fail,
    fields_of,
    out,
    print_json,
    print_rows,
    show,
    show_for_user,
    with_runtime,
)
from mls_sync.domain.status import ListingStatus
from mls_sync.runtime import Runtime
from mls_sync.services import listings

listings_app = typer.Typer(help="A user's listings.", no_args_is_help=True)
LISTING_FIELDS = ("id", "mls_connection_id", "listing_key", "mls_number", "status", "updated_at")


@listings_app.command("add")
def listings_add(
    connection_id: str,
    listing_key: str,
    mls_number: Annotated[
        str | None, typer.Option(help="RESO ListingId; else read from the feed's copy")
    ] = None,
    status: Annotated[
        ListingStatus | None, typer.Option(help="else read from the feed's copy")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Register one listing of a connection by its ListingKey."""

    async def work(runtime: Runtime) -> dict[str, Any]:
        try:
            listing = await listings.register_listing(
                runtime.engine,
                connection_id,
                user_id=None,
                listing_key=listing_key,
                mls_number=mls_number,
                status=status,
            )
        except listings.ListingRejectedError as exc:
            fail(exc.message)  # the MLS said no: not the operator's typing
        return fields_of(listing, LISTING_FIELDS)

    row = with_runtime(work)
    show("Listing registered", row, LISTING_FIELDS, as_json)


@listings_app.command("import")
def listings_import(
    connection_id: str,
    agent: Annotated[str | None, typer.Option(help="RESO ListAgentMlsId")] = None,
    office: Annotated[str | None, typer.Option(help="RESO ListOfficeMlsId")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import every listing of an agent and/or office that the connection does not hold yet,
    from its feed's replica (no MLS request); without --agent or --office, the connection's
    own agent and office ids."""

    async def work(runtime: Runtime) -> listings.ImportReport:
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]Importing listings from the feed's replica"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=as_json or not err.is_terminal,
        ) as bar:
            bar.add_task("import", total=None)
            return await listings.import_listings(
                runtime.engine,
                connection_id,
                user_id=None,
                agent_mls_id=agent,
                office_mls_id=office,
            )

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

    show_for_user(
        user,
        lambda uow, user_id: listings.list_listings(
            uow, user_id, connection_id=connection, status=status, limit=limit
        ),
        title="Listings",
        columns=LISTING_FIELDS,
        as_json=as_json,
    )
