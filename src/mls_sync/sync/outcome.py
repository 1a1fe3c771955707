"""What a sync operation reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mls_sync.domain.results import SyncResult

# Called after each batch with (listings just checked, listings in this connection's sync).
ProgressCallback = Callable[[int, int], None]


@dataclass
class Outcome:
    """What one operation did: the `success`/`message` pair and the result data."""

    success: bool
    message: str
    result: SyncResult


def summary(result: SyncResult) -> str:
    text = (
        f"{result.total_listings} listings checked, {result.updated_listings} updated, "
        f"{result.unpublished_posts} posts unpublished, {result.restored_listings} restored"
    )
    if result.errors:
        text += f", {len(result.errors)} errors"
    return text
