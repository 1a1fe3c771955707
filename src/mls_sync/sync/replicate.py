"""Timestamp replication of a feed: the MLS's changes since the feed's bookmark (every record,
on the feed's first load), a page at a time.

One query `ModificationTimestamp ge <bookmark>` (see mls/replication.py for why `ge` and the
bookmark's keys). Each page, in one transaction: the replica rows, the status changes of every
listing held with those keys, their unpublish jobs, and the bookmark that covers them. A crash
(or a failed request) repeats work on the next run instead of losing it, so a first load
resumes from its last committed page.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mls_sync.domain.reso import StatusMapper
from mls_sync.mls.client import ResoClient
from mls_sync.mls.errors import MlsRequestError
from mls_sync.mls.replication import Bookmark, advance, replication_cap, unseen
from mls_sync.observability.metrics import METRICS
from mls_sync.store import repositories as repo
from mls_sync.store.models import SyncRun
from mls_sync.sync.apply import Applier, RunScope
from mls_sync.sync.fanout import fan_out
from mls_sync.sync.outcome import ProgressCallback


async def replicate_timestamps(
    applier: Applier,
    scope: RunScope,
    client: ResoClient,
    *,
    started: datetime,
    clock_skew: timedelta,
    progress: ProgressCallback | None = None,
) -> str | None:
    """None when every page was applied; why not, when a request failed (MlsAuthError is
    left to the engine)."""
    feed = scope.feed
    bookmark = Bookmark.stored(feed.bookmark_timestamp, feed.bookmark_keys)
    cap = replication_cap(started, clock_skew)
    mapper = StatusMapper(feed.status_overrides or None)
    loading = feed.loaded_at is None
    records = 0
    try:
        async for page in client.fetch_changes_since(bookmark.timestamp):
            fresh = unseen(page, bookmark)
            moved = advance(bookmark, fresh, cap)
            if moved == bookmark and not fresh:
                continue  # an idle feed's empty page: nothing to write
            records += len(fresh)
            async with applier.db.transaction() as session:
                applied = await fan_out(session, applier, scope, fresh, mapper, seen_at=started)
                await repo.save_bookmark(session, feed.id, moved.timestamp, sorted(moved.keys))
                if loading:  # a first load shows how far it is (API, dashboard)
                    run = await session.get(SyncRun, scope.run_id)
                    if run is not None:
                        run.progress = {"recordsLoaded": records}
            applier.report(scope, applied)
            bookmark = moved
            feed.bookmark_timestamp, feed.bookmark_keys = moved.timestamp, sorted(moved.keys)
            if progress is not None:
                progress(len(fresh), 0)
    except MlsRequestError as exc:
        METRICS.error("mls_request")
        scope.log.warning("MLS replication stopped", error=str(exc))
        return f"MLS replication stopped: {exc}"
    return None
