"""Applying what the MLS said: a status change with its history row and unpublish jobs, in
the transaction of the page that carried it, and reporting it in its connection's result and
the log once that commits.

Every way of asking the MLS (a feed's load and replication, EntityEvent replication, a
reconciliation, a single lookup) ends here, so a change is recorded the same way whichever
path found it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from mls_sync.domain.policy import TransitionPolicy
from mls_sync.domain.reso import LISTING_NOT_FOUND, StatusMapper, StatusMappingError
from mls_sync.domain.results import StatusChange, SyncError, SyncResult
from mls_sync.domain.status import ListingStatus
from mls_sync.mls.client import MlsRecord
from mls_sync.observability.metrics import METRICS, ErrorKind
from mls_sync.store import repositories as repo
from mls_sync.store.interface import Storage, UnitOfWork
from mls_sync.store.models import Listing, MlsFeed

Log = structlog.typing.FilteringBoundLogger


@dataclass(frozen=True)
class Target:
    """A listing as the sync sees it: loaded before the MLS is asked, detached from sessions."""

    id: str
    connection_id: str
    listing_key: str
    mls_number: str
    status: ListingStatus

    def lookup_key(self, key_field: str) -> str:
        return self.listing_key if key_field == "ListingKey" else self.mls_number

    @classmethod
    def of(cls, listing: Listing) -> Target:
        return cls(
            id=listing.id,
            connection_id=listing.mls_connection_id,
            listing_key=listing.listing_key,
            mls_number=listing.mls_number,
            status=ListingStatus(listing.status),
        )


@dataclass
class RunScope:
    """One run of one feed: where its changes are counted (per member connection) and
    logged."""

    feed: MlsFeed
    run_id: str
    log: Log
    results: dict[str, SyncResult] = field(default_factory=dict)
    # Listings whose status this run changed, with their connection (their unpublish jobs
    # are drained after it).
    changed: dict[str, str] = field(default_factory=dict)
    records_read: int = 0  # MLS records this run applied to the replica

    def reported(self) -> set[str]:
        """Listings this run already changed or reported an error for."""
        seen = set(self.changed)
        for result in self.results.values():
            seen.update(error.listing_id for error in result.errors)
        return seen

    def result(self, connection_id: str) -> SyncResult:
        found = self.results.get(connection_id)
        if found is None:
            found = self.results[connection_id] = SyncResult()
        return found


@dataclass(frozen=True)
class Judged:
    """What a page of records means for our listings: changes to apply and per-listing
    errors (gone, unknown status). Pure: nothing is written until the page is applied."""

    wanted: list[tuple[Target, ListingStatus, MlsRecord]]
    errors: list[tuple[Target, SyncError]]


def judge(pairs: Sequence[tuple[Target, MlsRecord | None]], mapper: StatusMapper) -> Judged:
    """`None` for a record means the MLS no longer has it ("Listing not found in MLS")."""
    wanted: list[tuple[Target, ListingStatus, MlsRecord]] = []
    errors: list[tuple[Target, SyncError]] = []
    for target, record in pairs:
        try:
            if record is None or record.gone:
                raise StatusMappingError(LISTING_NOT_FOUND)
            wanted.append((target, mapper.map(record.standard_status), record))
        except StatusMappingError as exc:
            errors.append(
                (
                    target,
                    SyncError(listing_id=target.id, mls_number=target.mls_number, error=str(exc)),
                )
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


@dataclass(frozen=True)
class Applied:
    """A page as written, to be reported after its commit."""

    changes: list[_Change]
    errors: list[tuple[Target, SyncError]]


class Applier:
    def __init__(self, db: Storage, policy: TransitionPolicy) -> None:
        self.db = db
        self._policy = policy

    async def apply_in(self, session: UnitOfWork, scope: RunScope, judged: Judged) -> Applied:
        """A page's changes in the caller's transaction; `report` them once it commits."""
        # The target was read in this transaction: where the MLS confirms its status there is
        # nothing to lock or write (a load of 20,000 held listings locked each one, a third of
        # its time); the others are locked in one round, not one by one.
        wanted = [w for w in judged.wanted if w[1] is not w[0].status]
        locked = await session.listings.lock_many([target.id for target, _, _ in wanted])
        changes: list[_Change] = []
        for target, new_status, record in wanted:
            listing = locked.get(target.id)
            if listing is None:
                continue  # deleted while we were asking the MLS
            change = await self._apply_in(session, listing, target, new_status, record, scope)
            if change is not None:
                changes.append(change)
        return Applied(changes, judged.errors)

    def report(self, scope: RunScope, applied: Applied) -> None:
        """Count and log a committed page's changes and errors."""
        for change in applied.changes:
            self._report(change, scope)
        for target, error in applied.errors:
            listing_error(scope, target.connection_id, error)

    async def _apply_in(
        self,
        session: UnitOfWork,
        listing: Listing,
        target: Target,
        new_status: ListingStatus,
        record: MlsRecord,
        scope: RunScope,
    ) -> _Change | None:
        """The status change of the locked `listing`, with its history row and unpublish
        jobs, in the caller's transaction; None when the policy says nothing changes."""
        old_status = ListingStatus(listing.status)
        decision = self._policy.decide(old_status, new_status)
        if not decision.changed:
            return None
        await repo.record_status_change(
            session,
            listing,
            new_status,
            mls_modified_at=record.modification_timestamp,
            sync_run_id=scope.run_id,
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
        target, log = change.target, scope.log
        result = scope.result(target.connection_id)
        scope.changed[target.id] = target.connection_id
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
            "connection_id": target.connection_id,
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


def listing_error(
    scope: RunScope, connection_id: str, error: SyncError, kind: ErrorKind = "listing"
) -> None:
    """Record a listing the run could not sync: in its connection's result, the metrics and
    one log event."""
    scope.result(connection_id).errors.append(error)
    METRICS.error(kind)
    scope.log.warning(
        "listing not synced",
        connection_id=connection_id,
        listing_id=error.listing_id,
        mls_number=error.mls_number,
        error=error.error,
    )
