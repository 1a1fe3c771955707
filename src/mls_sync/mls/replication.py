"""The replication bookmark, as pure functions.

A bookmark is the newest ModificationTimestamp whose records are committed, plus the keys of
the records seen at exactly that instant. The next run asks for `ModificationTimestamp ge
<timestamp>` and drops those keys: many records sharing one timestamp across a page boundary
(or across a crash) are neither skipped (`gt` would skip them) nor applied twice.

The bookmark never passes `cap` (the run's start minus a clock-skew margin): an MLS may commit
a record with a timestamp slightly in the past, and such a record must still be >= the next
run's bookmark. Re-reading a few minutes of changes is cheap; applying is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mls_sync.mls.client import MlsRecord


@dataclass(frozen=True)
class Bookmark:
    timestamp: datetime | None
    keys: frozenset[str] = frozenset()

    @classmethod
    def stored(cls, timestamp: datetime | None, keys: Iterable[str] | None) -> Bookmark:
        return cls(timestamp, frozenset(keys or ()))


def unseen(records: Sequence[MlsRecord], bookmark: Bookmark) -> list[MlsRecord]:
    """The records not yet applied: everything but the bookmark instant's known keys."""
    if bookmark.timestamp is None:
        return list(records)
    return [
        r
        for r in records
        if not (r.modification_timestamp == bookmark.timestamp and r.listing_key in bookmark.keys)
    ]


def advance(bookmark: Bookmark, applied: Sequence[MlsRecord], cap: datetime) -> Bookmark:
    """The bookmark once `applied` (one page, in timestamp order) is committed."""
    stamps = [r.modification_timestamp for r in applied if r.modification_timestamp is not None]
    if not stamps:
        return bookmark
    newest = min(max(stamps), cap)
    if bookmark.timestamp is not None and newest < bookmark.timestamp:
        return bookmark  # never backwards
    at_newest = {r.listing_key for r in applied if r.modification_timestamp == newest}
    if bookmark.timestamp == newest:
        at_newest |= bookmark.keys
    return Bookmark(newest, frozenset(at_newest))


def replication_cap(run_started: datetime, clock_skew: timedelta) -> datetime:
    return run_started - clock_skew
