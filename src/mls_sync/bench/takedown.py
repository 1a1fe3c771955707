"""Takedown latency at a feed's cadence, on a simulated clock: from a sale in the MLS to the
platform's confirmed delete of the sold listing's post.

Ten minutes of one-minute cycles are not waited out. The sales get change times spread at
random over the window (simulated seconds, 0 to `window`); the sandbox stamps each sold record
with its change time (ModificationTimestamp = `base` + change time), and one feed cycle runs
per simulated cycle time t_k = k x cadence, once the sales up to t_k are in the MLS. The cycle
itself runs for real (its requests and their latency, the budget, the platform deletes), so a
post deleted d seconds into cycle k was deleted at simulated time t_k + d, and its latency is
t_k + d - change time. The change time is read back from the listing's stored
`mls_modified_at` (the record's ModificationTimestamp, as the sync applied it), d from the
post's `unpublished_at` (set when the platform confirmed the delete) less the cycle's real
start: what `mls_sync_takedown_latency_seconds` measures in production, on the simulated clock.

`base` lies an hour ahead of the real clock, so every stamped sale is newer than the feed's
bookmark (which trails the real clock by the clock-skew margin). Each cycle therefore reads
every sale made so far again (a real one-minute cycle reads the last five minutes' again), which
makes the simulated cycles slightly dearer than real ones, never cheaper.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mls_sync.bench.market import Market, restamp
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.database import Database
from mls_sync.store.models import Listing, Post
from mls_sync.store.types import utcnow

BASE_AHEAD = timedelta(hours=1)


@dataclass
class Tally:
    """What a run (or several) reported: listings updated, posts taken down, errors."""

    changes: int = 0
    unpublished: int = 0
    errors: int = 0
    failure: str | None = None  # why a run failed, when one did

    def add(self, other: Tally) -> None:
        self.changes += other.changes
        self.unpublished += other.unpublished
        self.errors += other.errors
        self.failure = self.failure or other.failure


@dataclass(frozen=True)
class Takedown:
    latencies: list[float]  # seconds, one per sold listing's post, in sale order
    cycles: int
    missing: int  # sold listings' posts still up after the last cycle
    cycle_seconds: list[float] = field(default_factory=list)  # each cycle's wall time

    def quantile(self, q: float) -> float | None:
        """Nearest rank: the smallest latency that at least `q` of them do not exceed."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


Cycle = Callable[[], Awaitable[Tally]]


async def run_takedown(
    db: Database,
    mls: ResoSandbox,
    market: Market,
    cycle: Cycle,
    *,
    sales: int,
    window: float,
    cadence: float,
    seed: int = 3,
) -> tuple[Tally, Takedown]:
    """`sales` held listings with a post, still Active, sold over `window` simulated seconds,
    with a feed `cycle` every `cadence` simulated seconds."""
    rng = random.Random(seed)
    candidates = sorted(k for k in market.post_ids if mls.listing(k).standard_status == "Active")
    if len(candidates) < sales:
        raise ValueError(f"{sales} sales need as many active listings with a post")
    sold = rng.sample(candidates, sales)
    pending = deque(zip(sorted(rng.uniform(0, window) for _ in sold), sold, strict=True))
    base = _millis(datetime.now(UTC) + BASE_AHEAD)
    tally = Tally()
    ran: list[tuple[float, datetime, datetime]] = []  # (t_k, real start, real end)
    for k in range(1, math.ceil(window / cadence) + 1):
        at = k * cadence
        while pending and pending[0][0] <= at:
            change, key = pending.popleft()
            restamp(mls, key, "Closed", base + timedelta(seconds=change))
        started = utcnow()
        tally.add(await cycle())
        ran.append((at, started, utcnow()))
    latencies: list[float] = []
    missing = 0
    async with db.transaction() as session:
        for key in sold:
            listing = await session.get(Listing, market.listing_ids[key])
            post = await session.get(Post, market.post_ids[key])
            deleted = None if post is None else post.unpublished_at
            changed = None if listing is None else listing.mls_modified_at
            during = next(((t, s) for t, s, e in ran if deleted and s <= deleted <= e), None)
            if deleted is None or changed is None or during is None:
                missing += 1
                continue
            at, started = during
            change = (changed - base).total_seconds()
            latencies.append(at + (deleted - started).total_seconds() - change)
    cycle_seconds = [(end - start).total_seconds() for _, start, end in ran]
    return tally, Takedown(latencies, len(ran), missing, cycle_seconds)


def _millis(moment: datetime) -> datetime:
    """As the MLS stamps records (and the sandbox truncates them): to the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
