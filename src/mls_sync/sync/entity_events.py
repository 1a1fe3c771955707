"""EntityEvent replication (RESO RCP-027): the normal path for connections whose profile says
`replication="entity_event"`.

Read the log after the connection's `entity_event_sequence`, a page at a time; for each page,
fetch the current record of every Property we hold that the page names (events for listings we
do not hold cost nothing more), judge them (a record the MLS no longer returns is "Listing not
found in MLS"), and commit the changes together with the page's last sequence. The sequence
therefore only moves past events whose changes are committed: a crash repeats a page, and
applying is idempotent. An idle connection costs one request (an empty page).

Where the stream starts: a full check reads the log's newest sequence before it asks about our
listings and stores it when it completes (sync/engine.py), so events during the check are read
again rather than missed.
"""

from __future__ import annotations

from mls_sync.domain.reso import StatusMapper
from mls_sync.mls.client import ResoClient
from mls_sync.mls.errors import MlsRequestError
from mls_sync.observability.metrics import METRICS
from mls_sync.store import repositories as repo
from mls_sync.store.interface import UnitOfWork
from mls_sync.sync.apply import Applier, Held, RunScope, SaveState, judge
from mls_sync.sync.outcome import Outcome


async def replicate_entity_events(
    applier: Applier, scope: RunScope, client: ResoClient, held: Held
) -> Outcome | None:
    """None when the log was read to its end; an Outcome when a request failed (MlsAuthError
    is left to the engine)."""
    connection = scope.connection
    sequence = connection.entity_event_sequence
    assert sequence is not None  # a full check runs first (SyncEngine.full_check_due)
    mapper = StatusMapper(connection.status_overrides or None)
    try:
        async for page in client.fetch_entity_events(sequence):
            if page.last_sequence is None or page.last_sequence <= sequence:
                continue  # an empty page: nothing to apply, nothing to move
            ours = [t for t in map(held.by_listing_key, page.record_keys()) if t is not None]
            records = await client.fetch_properties([t.listing_key for t in ours]) if ours else {}
            judged = judge([(t, records.get(t.listing_key)) for t in ours], mapper)
            await applier.apply_page(scope, judged, _saver(connection.id, page.last_sequence))
            sequence = page.last_sequence
    except MlsRequestError as exc:
        METRICS.error("mls_request")
        scope.log.warning("MLS entity-event replication stopped", error=str(exc))
        return Outcome(False, f"MLS replication stopped: {exc}", scope.result)
    return None


async def starting_sequence(client: ResoClient, scope: RunScope) -> int | None:
    """The log's newest sequence before a full check, or None when it cannot be read (the
    full check still runs; replication waits for a later one to give it a start)."""
    try:
        return await client.latest_entity_event_sequence()
    except MlsRequestError as exc:
        scope.log.warning("EntityEvent log not readable", error=str(exc))
        return None


def _saver(connection_id: str, sequence: int) -> SaveState:
    async def save(session: UnitOfWork) -> None:
        await repo.save_entity_event_sequence(session, connection_id, sequence)

    return save
