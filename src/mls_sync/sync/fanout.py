"""A page of the feed's records, applied: into the replica, and to every listing held with
one of its keys, whoever holds it (co-listing agents, several users of one feed).

Cost grows with the records in the page, never with the number of members or held listings:
one upsert, one indexed query for the holders, and a write per listing whose status changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from mls_sync.domain.replica import ReplicaRow
from mls_sync.domain.reso import StatusMapper
from mls_sync.mls.client import MlsRecord
from mls_sync.store.interface import UnitOfWork
from mls_sync.store.models import FeedRecord
from mls_sync.sync.apply import Applied, Applier, RunScope, Target, judge


def replica_row(record: MlsRecord) -> ReplicaRow:
    status = record.standard_status
    return ReplicaRow(
        listing_key=record.listing_key,
        listing_id=record.listing_id,
        standard_status=None if status is None else str(status),
        mls_status=record.mls_status,
        modification_timestamp=record.modification_timestamp,
        list_agent_mls_id=record.list_agent_mls_id,
        list_office_mls_id=record.list_office_mls_id,
        gone=record.gone,
    )


def record_of(row: FeedRecord) -> MlsRecord:
    """A replica row as the judging code reads an MLS answer."""
    return MlsRecord(
        listing_key=row.listing_key,
        listing_id=row.listing_id,
        standard_status=row.standard_status,
        modification_timestamp=row.modification_timestamp,
        gone=row.gone,
        mls_status=row.mls_status,
        list_agent_mls_id=row.list_agent_mls_id,
        list_office_mls_id=row.list_office_mls_id,
    )


async def fan_out(
    session: UnitOfWork,
    applier: Applier,
    scope: RunScope,
    records: Sequence[MlsRecord],
    mapper: StatusMapper,
    *,
    seen_at: datetime,
) -> Applied:
    """Upsert the records into the replica and apply them to their holders, in the caller's
    transaction; `applier.report` the result once it commits."""
    if not records:
        return Applied([], [])
    scope.records_read += len(records)
    await session.replica.upsert(scope.feed.id, [replica_row(r) for r in records], seen_at=seen_at)
    latest = {record.listing_key: record for record in records}  # in timestamp order
    holders = await session.listings.held_in_feed(scope.feed.id, latest)
    pairs: list[tuple[Target, MlsRecord | None]] = [
        (Target.of(listing), latest[listing.listing_key]) for listing in holders
    ]
    return await applier.apply_in(session, scope, judge(pairs, mapper))
