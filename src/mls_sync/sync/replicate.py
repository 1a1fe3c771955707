"""Timestamp replication: the MLS's changes since the connection's bookmark, a page at a time.

One query `ModificationTimestamp ge <bookmark>` (see mls/replication.py for why `ge` and the
bookmark's keys); each page's changes and the bookmark that covers them commit together, so a
crash (or a failed request) repeats work on the next run instead of losing it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from mls_sync.domain.reso import StatusMapper
from mls_sync.mls.client import MlsRecord, ResoClient
from mls_sync.mls.errors import MlsRequestError
from mls_sync.mls.replication import Bookmark, advance, replication_cap, unseen
from mls_sync.observability.metrics import METRICS
from mls_sync.store import repositories as repo
from mls_sync.store.interface import UnitOfWork
from mls_sync.sync.apply import Applier, Held, RunScope, SaveState, Target, judge
from mls_sync.sync.outcome import Outcome


async def replicate_timestamps(
    applier: Applier,
    scope: RunScope,
    client: ResoClient,
    held: Held,
    *,
    started: datetime,
    clock_skew: timedelta,
) -> Outcome | None:
    """None when every page was applied; an Outcome when a request failed (MlsAuthError is
    left to the engine)."""
    connection = scope.connection
    bookmark = Bookmark.stored(connection.bookmark_timestamp, connection.bookmark_keys)
    cap = replication_cap(started, clock_skew)
    mapper = StatusMapper(connection.status_overrides or None)
    try:
        assert bookmark.timestamp is not None  # a full check runs first (full_check_due)
        async for page in client.fetch_changes_since(bookmark.timestamp):
            fresh = unseen(page, bookmark)
            moved = advance(bookmark, fresh, cap)
            judged = judge(_ours(held, fresh), mapper)
            if moved == bookmark and not judged.wanted and not judged.errors:
                continue  # an idle connection's empty page: nothing to write
            await applier.apply_page(scope, judged, _saver(connection.id, moved))
            bookmark = moved
    except MlsRequestError as exc:
        METRICS.error("mls_request")
        scope.log.warning("MLS replication stopped", error=str(exc))
        return Outcome(False, f"MLS replication stopped: {exc}", scope.result)
    return None


def _ours(held: Held, records: Sequence[MlsRecord]) -> list[tuple[Target, MlsRecord | None]]:
    # Records for listings we do not hold are not ours to track.
    pairs = ((held.match(record), record) for record in records)
    return [(target, record) for target, record in pairs if target is not None]


def _saver(connection_id: str, bookmark: Bookmark) -> SaveState:
    async def save(session: UnitOfWork) -> None:
        await repo.save_bookmark(session, connection_id, bookmark.timestamp, sorted(bookmark.keys))

    return save
