"""Bring listings under sync: import an agent's or an office's listings from the MLS, or
register one listing by its ListingKey.

New listings start at the status the MLS gives them, so the first sync has nothing to undo; a
listing we already hold is left alone (changing it is the sync's job, with its policy). The MLS
is asked on the engine's request budget for the connection's credential, like any sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from mls_sync.domain.errors import Conflict, InvalidInput, NeedsReauth, NotFound, Unavailable
from mls_sync.domain.reso import LISTING_NOT_FOUND, StatusMapper, StatusMappingError
from mls_sync.domain.status import ConnectionState, ListingStatus
from mls_sync.mls.client import MlsRecord
from mls_sync.mls.errors import MLS_CONNECTION_EXPIRED, MlsAuthError, MlsRequestError
from mls_sync.store import repositories as repo
from mls_sync.store.crypto import SecretDecryptError
from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import Listing, MlsConnection
from mls_sync.sync.clients import ConnectionConfigError
from mls_sync.sync.engine import SyncEngine


class MlsUnavailableError(Unavailable):
    """The MLS could not be asked or did not answer; the message is for the user."""


class ListingExistsError(Conflict):
    """The connection already holds a listing with this ListingKey."""


class ListingRejectedError(InvalidInput):
    """The MLS does not have the listing, or gives it a status we cannot map."""

    def __init__(self, message: str) -> None:
        super().__init__("listingKey", message)


@dataclass
class ImportReport:
    imported: list[Listing] = field(default_factory=list)
    already_present: int = 0
    # (ListingKey, why it was not imported)
    skipped: list[tuple[str, str]] = field(default_factory=list)


async def import_listings(
    engine: SyncEngine,
    connection_id: str,
    *,
    user_id: str | None,
    agent_mls_id: str | None = None,
    office_mls_id: str | None = None,
) -> ImportReport:
    """Every listing of the agent (and/or office) that the connection does not hold yet."""
    criteria = {"ListAgentMlsId": agent_mls_id, "ListOfficeMlsId": office_mls_id}
    equals = {name: value for name, value in criteria.items() if value}
    if not equals:
        raise InvalidInput("agentMlsId", "agentMlsId or officeMlsId is needed")
    connection = await _owned_connection(engine, connection_id, user_id)
    records = await _search(engine, connection, equals)
    mapper = StatusMapper(connection.status_overrides or None)
    report = ImportReport()
    async with engine.db.transaction() as session:
        held = {
            listing.listing_key for listing in await session.listings.of_connection(connection.id)
        }
        for record in records:
            if record.listing_key in held:
                report.already_present += 1
                continue
            held.add(record.listing_key)  # a key repeated across pages is imported once
            try:
                status = _status_of(record, mapper)
            except StatusMappingError as exc:
                report.skipped.append((record.listing_key, str(exc)))
                continue
            report.imported.append(await _add(session, connection, record, status))
    return report


async def register_listing(
    engine: SyncEngine,
    connection_id: str,
    *,
    user_id: str | None,
    listing_key: str,
    mls_number: str | None = None,
    status: ListingStatus | None = None,
) -> Listing:
    """One listing by its ListingKey. What is not given (MLS number, status) is read from the
    MLS, which must then have the listing."""
    connection = await _owned_connection(engine, connection_id, user_id)
    async with engine.db.transaction() as session:
        if await session.listings.by_key(connection.id, listing_key) is not None:
            raise ListingExistsError("This MLS connection already has a listing with this key")
    if mls_number is None or status is None:
        records = await _search(engine, connection, {"ListingKey": listing_key})
        record = next((r for r in records if r.listing_key == listing_key), None)
        if record is None:
            raise ListingRejectedError(LISTING_NOT_FOUND)
        try:
            status = status or _status_of(record, StatusMapper(connection.status_overrides or None))
        except StatusMappingError as exc:
            raise ListingRejectedError(str(exc)) from None
        mls_number = mls_number or record.listing_id or listing_key
    try:
        async with engine.db.transaction() as session:
            return await repo.add_listing(
                session,
                connection=connection,
                listing_key=listing_key,
                mls_number=mls_number,
                status=status,
            )
    except IntegrityError:  # registered by someone else since we looked
        raise ListingExistsError(
            "This MLS connection already has a listing with this key"
        ) from None


async def _owned_connection(
    engine: SyncEngine, connection_id: str, user_id: str | None
) -> MlsConnection:
    async with engine.db.transaction() as session:
        connection = await repo.get_mls_connection(session, connection_id, user_id=user_id)
    if connection is None:
        raise NotFound("MLS connection not found")
    return connection


async def _search(
    engine: SyncEngine, connection: MlsConnection, equals: dict[str, str]
) -> list[MlsRecord]:
    if connection.state == ConnectionState.EXPIRED:
        raise NeedsReauth(MLS_CONNECTION_EXPIRED)
    try:
        client = engine.mls_client(connection)
        return [record async for page in client.search(**equals) for record in page]
    except (SecretDecryptError, ConnectionConfigError) as exc:
        raise MlsUnavailableError(str(exc)) from None
    except MlsAuthError:
        async with engine.db.transaction() as session:
            await repo.mark_connection(
                session, connection.id, ConnectionState.EXPIRED, MLS_CONNECTION_EXPIRED
            )
        raise NeedsReauth(MLS_CONNECTION_EXPIRED) from None
    except MlsRequestError as exc:
        raise MlsUnavailableError(str(exc)) from None


def _status_of(record: MlsRecord, mapper: StatusMapper) -> ListingStatus:
    if record.gone:
        raise StatusMappingError(LISTING_NOT_FOUND)
    return mapper.map(record.standard_status)


async def _add(
    session: UnitOfWork, connection: MlsConnection, record: MlsRecord, status: ListingStatus
) -> Listing:
    listing = await repo.add_listing(
        session,
        connection=connection,
        listing_key=record.listing_key,
        mls_number=record.listing_id or record.listing_key,
        status=status,
    )
    listing.mls_modified_at = record.modification_timestamp
    return listing
