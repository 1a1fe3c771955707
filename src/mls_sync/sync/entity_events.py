"""EntityEvent replication (RESO RCP-027): the normal path for feeds whose profile says
`replication="entity_event"`, once the feed is loaded.

Read the log after the feed's `entity_event_sequence`, a page at a time; for each page, fetch
the current record of every Property the page names, and commit, in one transaction, the
replica rows, the changes of every listing held with those keys and the page's last sequence.
A record the MLS no longer returns left the feed (its replica row is marked gone, and a holder
sees "Listing not found in MLS"). The sequence only moves past events whose changes are
committed: a crash repeats a page, and applying is idempotent. An idle feed costs one request
(an empty page).

Where the stream starts: a first load (or reconciliation) reads the log's newest sequence
before it starts and stores it when it completes (sync/engine.py), so events during the load
are read again rather than missed.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from mls_sync.domain.reso import StatusMapper
from mls_sync.mls.client import MlsRecord, ResoClient
from mls_sync.mls.errors import MlsRequestError
from mls_sync.observability.metrics import METRICS
from mls_sync.store import repositories as repo
from mls_sync.sync.apply import Applier, RunScope
from mls_sync.sync.fanout import fan_out, record_of


async def replicate_entity_events(
    applier: Applier, scope: RunScope, client: ResoClient, *, started: datetime
) -> str | None:
    """None when the log was read to its end; why not, when a request failed (MlsAuthError
    is left to the engine)."""
    feed = scope.feed
    sequence = feed.entity_event_sequence
    assert sequence is not None  # a load records the start (SyncEngine)
    mapper = StatusMapper(feed.status_overrides or None)
    try:
        async for page in client.fetch_entity_events(sequence):
            if page.last_sequence is None or page.last_sequence <= sequence:
                continue  # an empty page: nothing to apply, nothing to move
            keys = list(dict.fromkeys(page.record_keys()))
            found = await client.fetch_properties(keys) if keys else {}
            async with applier.db.transaction() as session:
                known = await session.replica.of_keys(feed.id, keys)
                records: list[MlsRecord] = [
                    found.get(key) or dataclasses.replace(record_of(known[key]), gone=True)
                    for key in keys
                    if key in found or key in known
                ]
                applied = await fan_out(session, applier, scope, records, mapper, seen_at=started)
                await repo.save_entity_event_sequence(session, feed.id, page.last_sequence)
            applier.report(scope, applied)
            sequence = page.last_sequence
            feed.entity_event_sequence = sequence
    except MlsRequestError as exc:
        METRICS.error("mls_request")
        scope.log.warning("MLS entity-event replication stopped", error=str(exc))
        return f"MLS replication stopped: {exc}"
    return None


async def starting_sequence(client: ResoClient, scope: RunScope) -> int | None:
    """The log's newest sequence before a load, or None when it cannot be read (the load
    still runs; replication waits for a later one to give it a start)."""
    try:
        return await client.latest_entity_event_sequence()
    except MlsRequestError as exc:
        scope.log.warning("EntityEvent log not readable", error=str(exc))
        return None
