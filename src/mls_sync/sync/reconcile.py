"""Reconciliation: what replication cannot see, found without asking about each listing.

Replication sees records that change; it does not see a record that leaves the feed without a
last change (deleted, or no longer visible to our credential), nor a change it missed. So, on
a slower cadence (daily by default), a feed is pulled key-only (`$select` ListingKey and
ModificationTimestamp, the largest pages the vendor allows: 100,000 records in pages of 5,000
are 20 requests):
- a key the replica lacks, or holds older, is fetched (in batches of the feed's key field) and
  applied like any change;
- a replica row the pull did not see, and that did not change since it began, left the feed:
  it is marked gone;
then held listings are compared with the replica locally: a listing whose record is gone or
missing is reported "Listing not found in MLS", a status that differs is applied. A first load
ends with the same local comparison (it saw every record, so nothing is marked gone).
"""

from __future__ import annotations

from datetime import datetime

from mls_sync.domain.reso import StatusMapper
from mls_sync.mls.client import MlsRecord, ResoClient
from mls_sync.mls.errors import MlsRequestError
from mls_sync.observability.metrics import METRICS
from mls_sync.store.models import FeedRecord
from mls_sync.sync.apply import Applier, RunScope, Target, judge
from mls_sync.sync.fanout import fan_out, record_of


async def reconcile(
    applier: Applier, scope: RunScope, client: ResoClient, *, started: datetime
) -> str | None:
    """None when the feed was reconciled; why not, when a request failed (MlsAuthError is
    left to the engine)."""
    feed = scope.feed
    mapper = StatusMapper(feed.status_overrides or None)
    stale: list[MlsRecord] = []
    try:
        async for page in client.fetch_keys():
            keys = [record.listing_key for record in page]
            async with applier.db.transaction() as session:
                known = await session.replica.of_keys(feed.id, keys)
                await session.replica.touch(feed.id, keys, seen_at=started)
            stale.extend(r for r in page if _stale(known.get(r.listing_key), r))
        await _refetch(applier, scope, client, stale, mapper, started=started)
    except MlsRequestError as exc:
        METRICS.error("mls_request")
        scope.log.warning("MLS reconciliation stopped", error=str(exc))
        return f"MLS reconciliation stopped: {exc}"
    async with applier.db.transaction() as session:
        gone = await session.replica.mark_gone_unseen(feed.id, since=started)
    if gone:
        scope.log.info("records left the feed", records=len(gone))
    await compare_held(applier, scope, mapper)
    return None


def _stale(row: FeedRecord | None, pulled: MlsRecord) -> bool:
    if row is None or row.gone:
        return True
    stamp = pulled.modification_timestamp
    if stamp is None or row.modification_timestamp is None:
        return False
    return stamp > row.modification_timestamp


async def _refetch(
    applier: Applier,
    scope: RunScope,
    client: ResoClient,
    stale: list[MlsRecord],
    mapper: StatusMapper,
    *,
    started: datetime,
) -> None:
    """Records the replica lacks or holds out of date, a batch at a time, by the feed's key
    field (MLS Grid cannot filter on ListingKey: there, by ListingId)."""
    by_id = client.key_field == "ListingId"
    lookups = [r.listing_id if by_id else r.listing_key for r in stale]
    wanted = [key for key in lookups if key]
    for i in range(0, len(wanted), client.batch_size):
        batch = wanted[i : i + client.batch_size]
        records = list((await client.fetch_by_keys(batch)).values())
        async with applier.db.transaction() as session:
            applied = await fan_out(session, applier, scope, records, mapper, seen_at=started)
        applier.report(scope, applied)


async def compare_held(applier: Applier, scope: RunScope, mapper: StatusMapper) -> None:
    """Every listing held in the feed against its replica row, in one transaction: no MLS
    request. Listings this run already reported on are not judged twice."""
    reported = scope.reported()
    async with applier.db.transaction() as session:
        held = [
            listing
            for listing in await session.listings.of_feed(scope.feed.id)
            if listing.id not in reported
        ]
        rows = await session.replica.of_keys(scope.feed.id, [h.listing_key for h in held])
        pairs: list[tuple[Target, MlsRecord | None]] = []
        for listing in held:
            row = rows.get(listing.listing_key)
            pairs.append((Target.of(listing), None if row is None else record_of(row)))
        judged = judge(pairs, mapper)
        # Unchanged statuses cost nothing: the policy writes only differences.
        applied = await applier.apply_in(session, scope, judged)
    applier.report(scope, applied)
