"""Applying what the MLS said: one status change with its history row and unpublish jobs, in
one transaction, and reporting it in the run's result and log.

Every way of asking the MLS (a full check, timestamp replication, EntityEvent replication, a
single lookup) ends here, so a change is recorded the same way whichever path found it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from mls_sync.domain.policy import TransitionPolicy
from mls_sync.domain.reso import LISTING_NOT_FOUND, StatusMapper, StatusMappingError
from mls_sync.domain.results import StatusChange, SyncError, SyncResult
from mls_sync.domain.status import ListingStatus
from mls_sync.mls.client import MlsRecord
from mls_sync.observability.metrics import METRICS, ErrorKind
from mls_sync.store import repositories as repo
from mls_sync.store.interface import Storage, UnitOfWork
from mls_sync.store.models import Listing, MlsConnection

Log = structlog.typing.FilteringBoundLogger
# Writes a replication bookmark in the transaction of the page it covers.
SaveState = Callable[[UnitOfWork], Awaitable[None]]


@dataclass(frozen=True)
class Target:
    """A listing as the sync sees it: loaded before the MLS is asked, detached from sessions."""

    id: str
    listing_key: str
    mls_number: str
    status: ListingStatus

    def lookup_key(self, key_field: str) -> str:
        return self.listing_key if key_field == "ListingKey" else self.mls_number

    @classmethod
    def of(cls, listing: Listing) -> Target:
        return cls(
            id=listing.id,
            listing_key=listing.listing_key,
            mls_number=listing.mls_number,
            status=ListingStatus(listing.status),
        )


class Held:
    """The listings we hold, findable by the record's ListingKey (or ListingId where the
    connection keys on it)."""

    def __init__(self, targets: Sequence[Target], key_field: str) -> None:
        self._by_key = {t.listing_key: t for t in targets}
        self._by_id = {t.mls_number: t for t in targets} if key_field == "ListingId" else {}

    def match(self, record: MlsRecord) -> Target | None:
        found = self._by_key.get(record.listing_key)
        if found is None and record.listing_id is not None:
            found = self._by_id.get(record.listing_id)
        return found

    def by_listing_key(self, listing_key: str) -> Target | None:
        return self._by_key.get(listing_key)


@dataclass
class RunScope:
    """One run of one connection: where its changes are counted and logged."""

    connection: MlsConnection
    run_id: str
    result: SyncResult
    log: Log


@dataclass(frozen=True)
class Judged:
    """What a page of records means for our listings: changes to apply and per-listing
    errors (gone, unknown status). Pure: nothing is written until the page is applied."""

    wanted: list[tuple[Target, ListingStatus, MlsRecord]]
    errors: list[SyncError]


def judge(pairs: Sequence[tuple[Target, MlsRecord | None]], mapper: StatusMapper) -> Judged:
    """`None` for a record means the MLS no longer has it ("Listing not found in MLS")."""
    wanted: list[tuple[Target, ListingStatus, MlsRecord]] = []
    errors: list[SyncError] = []
    for target, record in pairs:
        try:
            if record is None or record.gone:
                raise StatusMappingError(LISTING_NOT_FOUND)
            wanted.append((target, mapper.map(record.standard_status), record))
        except StatusMappingError as exc:
            errors.append(
                SyncError(listing_id=target.id, mls_number=target.mls_number, error=str(exc))
            )
    return Judged(wanted, errors)


@dataclass(frozen=True)
class _Change:
    """A committed status change, reported once its transaction is done."""

    target: Target
    old_status: ListingStatus
    new_status: ListingStatus
    queued: int
    restoration: bool
    relisting: bool


class Applier:
    def __init__(self, db: Storage, policy: TransitionPolicy) -> None:
        self._db = db
        self._policy = policy

    async def apply(
        self, scope: RunScope, target: Target, new_status: ListingStatus, record: MlsRecord
    ) -> None:
        """One listing's change in its own transaction (full checks and lookups)."""
        if new_status is target.status:
            # The MLS confirms the status loaded at the run's start: no transaction to open
            # (a full check of 10,000 unchanged listings opened 10,000, which cost it most of
            # its time). A row changed since then was changed by a sync that read the MLS
            # itself; the next run reconciles any difference.
            return
        async with self._db.transaction() as session:
            change = await self._apply_in(session, target, new_status, record, scope.run_id)
        if change is not None:
            self._report(change, scope)

    async def apply_page(self, scope: RunScope, judged: Judged, save: SaveState) -> None:
        """A page of changes and the bookmark that covers them, in one transaction: a crash
        before the commit leaves both as they were, so the next run repeats the page."""
        changes: list[_Change] = []
        async with self._db.transaction() as session:
            for target, new_status, record in judged.wanted:
                change = await self._apply_in(session, target, new_status, record, scope.run_id)
                if change is not None:
                    changes.append(change)
            await save(session)
        for change in changes:
            self._report(change, scope)
        for error in judged.errors:
            listing_error(scope, error)

    async def _apply_in(
        self,
        session: UnitOfWork,
        target: Target,
        new_status: ListingStatus,
        record: MlsRecord,
        run_id: str,
    ) -> _Change | None:
        """The status change with its history row and unpublish jobs, in the caller's
        transaction; None when the policy says nothing changes."""
        listing = await session.listings.lock(target.id)
        if listing is None:
            return None  # deleted while we were asking the MLS
        old_status = ListingStatus(listing.status)
        decision = self._policy.decide(old_status, new_status)
        if not decision.changed:
            return None
        await repo.record_status_change(
            session,
            listing,
            new_status,
            mls_modified_at=record.modification_timestamp,
            sync_run_id=run_id,
        )
        queued = 0
        if decision.unpublishes_posts:
            queued = await session.outbox.enqueue(listing.id)
        return _Change(
            target,
            old_status,
            new_status,
            queued,
            restoration=decision.is_restoration,
            relisting=decision.is_relisting,
        )

    @staticmethod
    def _report(change: _Change, scope: RunScope) -> None:
        target, result, log = change.target, scope.result, scope.log
        result.updated_listings += 1
        result.status_changes.append(
            StatusChange(
                listing_id=target.id,
                mls_number=target.mls_number,
                old_status=change.old_status,
                new_status=change.new_status,
            )
        )
        fields = {
            "listing_id": target.id,
            "mls_number": target.mls_number,
            "old_status": str(change.old_status),
            "new_status": str(change.new_status),
        }
        log.info("status changed", unpublish_jobs=change.queued, **fields)
        if change.restoration:
            result.restored_listings += 1
            log.info(f"Listing {target.mls_number} restored to active", **fields)
        if change.relisting:
            log.info(f"Listing {target.mls_number} relisted", **fields)


def listing_error(scope: RunScope, error: SyncError, kind: ErrorKind = "listing") -> None:
    """Record a listing the run could not sync: in the result, the metrics and one log event."""
    scope.result.errors.append(error)
    METRICS.error(kind)
    scope.log.warning(
        "listing not synced",
        listing_id=error.listing_id,
        mls_number=error.mls_number,
        error=error.error,
    )
