"""Bring listings under sync: import an agent's or an office's listings, or register one
listing by its ListingKey, from the feed's local replica.

No MLS request: the feed's replica holds every record's key fields, so an import works on any
vendor whatever it lets us filter on (MLS Grid cannot filter on ListAgentMlsId), and costs the
MLS budget nothing. A feed that has not finished its first load cannot answer yet
(`FeedNotLoadedError`). New listings start at the status the replica gives them, so the first
sync has nothing to undo; a listing we already hold is left alone (changing it is the sync's
job, with its policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from mls_sync.domain.errors import (
    CONNECTION_NOT_FOUND,
    Conflict,
    InvalidInput,
    NeedsReauth,
    NotFound,
)
from mls_sync.domain.reso import LISTING_NOT_FOUND, StatusMapper, StatusMappingError
from mls_sync.domain.status import ConnectionState, ListingStatus
from mls_sync.mls.client import MlsRecord
from mls_sync.mls.errors import MLS_CONNECTION_EXPIRED
from mls_sync.store import repositories as repo
from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import Listing, MlsConnection, MlsFeed
from mls_sync.sync.engine import SyncEngine
from mls_sync.sync.fanout import record_of


class ListingExistsError(Conflict):
    """The connection already holds a listing with this ListingKey."""


class FeedNotLoadedError(Conflict):
    """The feed's replica is still loading: imports and lookups wait for it."""

    def __init__(self) -> None:
        super().__init__(FEED_NOT_LOADED)


FEED_NOT_LOADED = (
    "This MLS feed has not finished its first load yet: sync the connection (or wait for the "
    "next cycle), then try again"
)


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
    """Every listing of the agent (and/or office) that the connection does not hold yet; with
    neither given, the connection's own agent and office MLS ids."""
    async with engine.db.transaction() as session:
        connection, feed = await _owned(session, connection_id, user_id)
        agent_mls_id = agent_mls_id or (None if office_mls_id else connection.agent_mls_id)
        office_mls_id = office_mls_id or (None if agent_mls_id else connection.office_mls_id)
        if not (agent_mls_id or office_mls_id):
            raise InvalidInput("agentMlsId", "agentMlsId or officeMlsId is needed")
        rows = await session.replica.find(
            feed.id, agent_mls_id=agent_mls_id, office_mls_id=office_mls_id
        )
        mapper = StatusMapper(feed.status_overrides or None)
        held = {
            listing.listing_key for listing in await session.listings.of_connection(connection.id)
        }
        report = ImportReport()
        for row in rows:
            if row.listing_key in held:
                report.already_present += 1
                continue
            try:
                status = _status_of(record_of(row), mapper)
            except StatusMappingError as exc:
                report.skipped.append((row.listing_key, str(exc)))
                continue
            report.imported.append(await _add(session, connection, record_of(row), status))
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
    feed's replica, which must then have the listing."""
    try:
        async with engine.db.transaction() as session:
            connection, feed = await _owned(session, connection_id, user_id, need_load=False)
            if await session.listings.by_key(connection.id, listing_key) is not None:
                raise ListingExistsError(LISTING_EXISTS)
            modified = None
            if mls_number is None or status is None:
                if feed.loaded_at is None:
                    raise FeedNotLoadedError()
                row = (await session.replica.of_keys(feed.id, [listing_key])).get(listing_key)
                if row is None:
                    raise ListingRejectedError(LISTING_NOT_FOUND)
                record = record_of(row)
                try:
                    status = status or _status_of(
                        record, StatusMapper(feed.status_overrides or None)
                    )
                except StatusMappingError as exc:
                    raise ListingRejectedError(str(exc)) from None
                mls_number = mls_number or record.listing_id or listing_key
                modified = record.modification_timestamp
            listing = await repo.add_listing(
                session,
                connection=connection,
                listing_key=listing_key,
                mls_number=mls_number,
                status=status,
            )
            listing.mls_modified_at = modified
            return listing
    except IntegrityError:  # registered by someone else since we looked
        raise ListingExistsError(LISTING_EXISTS) from None


LISTING_EXISTS = "This MLS connection already has a listing with this key"


async def _owned(
    session: UnitOfWork, connection_id: str, user_id: str | None, *, need_load: bool = True
) -> tuple[MlsConnection, MlsFeed]:
    connection = await repo.get_mls_connection(session, connection_id, user_id=user_id)
    if connection is None:
        raise NotFound(CONNECTION_NOT_FOUND)
    feed = await repo.feed_of(session, connection)
    if feed.state == ConnectionState.EXPIRED:
        raise NeedsReauth(MLS_CONNECTION_EXPIRED)
    if need_load and feed.loaded_at is None:
        raise FeedNotLoadedError()
    return connection, feed


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
