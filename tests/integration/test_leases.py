"""One run per feed across processes: the lease row (keyed by the feed's id), renewed while its
holder works and taken over once its holder died; on SQLite and PostgreSQL, in one process and
across two. Time passes on the test's clock: a lease outlives its TTL only because it was
renewed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from factories import Clock, seed_connection
from mls_sync.domain.status import ListingStatus as S
from mls_sync.runtime import Runtime
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.store.database import Database
from mls_sync.store.models import SyncRun
from mls_sync.store.types import utcnow
from mls_sync.sync.guard import LeaseGuard, hold
from polling import eventually

TTL = timedelta(seconds=60)
# Real time between two renewals by the holder's background task: its next turn comes at once.
RENEW_EVERY = timedelta(seconds=0.02)


async def expiry(db: Database, feed_id: str) -> datetime:
    async with db.transaction() as session:
        lease = await session.leases.of(feed_id)
    assert lease is not None
    return lease.expires_at


async def more_than_a_ttl_passes(db: Database, clock: Clock, *held: str) -> None:
    """The clock moves on by more than a TTL in two steps, the holder's renewal task getting
    its turn in between: each lease in `held` is still alive afterwards only if it was renewed."""
    step = TTL * 2 / 3
    clock.advance(step)
    moved = clock()

    async def renewed_since_the_clock_moved() -> bool:
        return all([await expiry(db, fid) >= moved + TTL for fid in held])

    await eventually(renewed_since_the_clock_moved, within=5, what=f"renewals of {held}")
    clock.advance(step)  # past every expiry set before the first step


async def test_a_lease_is_taken_once_until_released(db: Database) -> None:
    first, second = LeaseGuard(db), LeaseGuard(db)  # two processes, as far as leases go

    assert await first.try_acquire("f1")
    assert not await second.try_acquire("f1")
    assert not await first.try_acquire("f1")  # the holder itself does not take it twice
    assert await second.try_acquire("f2")  # other feeds are unaffected

    await first.release("f1")
    assert await second.try_acquire("f1")
    await second.release("f1")
    await second.release("f2")
    async with db.transaction() as session:
        assert await session.leases.of("f1") is None


async def test_a_cycles_leases_are_given_back_together_and_only_the_holders(
    db: Database,
) -> None:
    mine, theirs = LeaseGuard(db), LeaseGuard(db)
    assert await mine.try_acquire_many(["f1", "f2", "f3"]) == {"f1", "f2", "f3"}
    assert await theirs.try_acquire("f4")

    await mine.release_many(["f1", "f3", "f4", "never-held"])  # f4 is not this guard's
    assert mine.held() == frozenset({"f2"})
    assert await theirs.try_acquire("f1") and await theirs.try_acquire("f3")
    assert not await mine.try_acquire("f4")  # still theirs
    await mine.release_many([])  # nothing to give back: no transaction at all


async def test_many_concurrent_claims_have_exactly_one_winner(db: Database) -> None:
    guards = [LeaseGuard(db) for _ in range(8)]

    won = await asyncio.gather(*(g.try_acquire("f1") for g in guards))

    assert sum(won) == 1
    winner = guards[won.index(True)]
    async with db.transaction() as session:
        lease = await session.leases.of("f1")
    assert lease is not None and lease.holder == winner.holder
    await winner.release("f1")


async def test_an_expired_lease_is_taken_over_and_the_dead_holder_cannot_renew_it(
    db: Database,
) -> None:
    now = utcnow()
    async with db.transaction() as session:  # a holder that died a while ago
        assert await session.leases.take("f1", "dead-host:1:abc", now=now - 2 * TTL, ttl=TTL)
    guard = LeaseGuard(db)

    assert await guard.try_acquire("f1")

    async with db.transaction() as session:
        lease = await session.leases.of("f1")
        assert lease is not None and lease.holder == guard.holder
        assert lease.expires_at > now
        assert not await session.leases.renew("f1", "dead-host:1:abc", now=now, ttl=TTL)
        await session.leases.release("f1", "dead-host:1:abc")  # not theirs: a no-op
        assert await session.leases.of("f1") is not None
    await guard.release("f1")


async def test_a_live_lease_is_not_taken_over(db: Database) -> None:
    async with db.transaction() as session:
        assert await session.leases.take("f1", "alive:1:abc", now=utcnow(), ttl=TTL)
        assert not await session.leases.take("f1", "other:2:def", now=utcnow(), ttl=TTL)
        lease = await session.leases.of("f1")
    assert lease is not None and lease.holder == "alive:1:abc"


async def test_a_holder_renews_its_lease_while_it_works(db: Database, clock: Clock) -> None:
    guard = LeaseGuard(db, ttl=TTL, renew_every=RENEW_EVERY, clock=clock)
    rival = LeaseGuard(db, ttl=TTL, renew_every=RENEW_EVERY, clock=clock)

    async with hold(guard, "f1") as held:
        assert held
        async with db.transaction() as session:
            lease = await session.leases.of("f1")
        assert lease is not None
        first_expiry = lease.expires_at
        await more_than_a_ttl_passes(db, clock, "f1")  # only renewal keeps it
        assert not await rival.try_acquire("f1")
        async with db.transaction() as session:
            lease = await session.leases.of("f1")
        assert lease is not None and lease.expires_at > first_expiry

    assert guard.held() == frozenset()
    assert await rival.try_acquire("f1")  # released on the way out
    await rival.release("f1")


async def test_every_lease_a_run_holds_is_renewed_until_each_is_released(
    db: Database, clock: Clock
) -> None:
    guard = LeaseGuard(db, ttl=TTL, renew_every=RENEW_EVERY, clock=clock)
    rival = LeaseGuard(db, ttl=TTL, renew_every=RENEW_EVERY, clock=clock)

    assert await guard.try_acquire_many(["f1", "f2", "f3"]) == {"f1", "f2", "f3"}
    await more_than_a_ttl_passes(db, clock, "f1", "f2", "f3")  # only renewal keeps them
    assert await rival.try_acquire_many(["f1", "f2", "f3"]) == set()

    await guard.release("f1")  # the others are still renewed
    await more_than_a_ttl_passes(db, clock, "f2", "f3")
    assert await rival.try_acquire_many(["f1", "f2", "f3"]) == {"f1"}

    await guard.release("f2")
    await guard.release("f3")
    assert guard.held() == frozenset()
    assert await rival.try_acquire_many(["f2", "f3"]) == {"f2", "f3"}
    for feed_id in ("f1", "f2", "f3"):
        await rival.release(feed_id)


def test_the_renewal_interval_must_be_shorter_than_the_ttl(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ValueError, match="renewed more often"):
        LeaseGuard(db, ttl=timedelta(seconds=10), renew_every=timedelta(seconds=10))


@pytest.mark.slow
async def test_two_processes_racing_for_one_feed_never_both_replicate_it(
    runtime: Runtime, reso: ResoSandbox, reso_url: str, database_url: str, tmp_path: Path
) -> None:
    seeded = await seed_connection(runtime, reso, reso_url, {"K1": S.ACTIVE, "K2": S.PENDING})
    reso.latency = 1.5  # the winner is still syncing when the loser asks
    assert runtime.settings.token_keys is not None
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MLS_SYNC_TOKEN_KEYS": runtime.settings.token_keys.get_secret_value(),
        "MLS_SYNC_DATA_DIR": str(tmp_path),
        "MLS_SYNC_LOG_FORMAT": "json",
        "MLS_SYNC_MLS_TIMEOUT_SECONDS": "10",
    }
    command = [
        sys.executable,
        "-m",
        "mls_sync.cli",
        "sync",
        "connection",
        seeded.connection_id,
        "--json",
    ]

    async def race() -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert stdout, stderr.decode()
        answer: dict[str, Any] = json.loads(stdout)
        return answer

    answers = await asyncio.gather(race(), race())

    messages = sorted(a["message"] for a in answers)
    assert [a["success"] for a in answers].count(True) == 1, messages
    assert "A sync of this MLS connection is already in progress" in messages
    async with runtime.db.transaction() as session:
        runs = (await session.execute(SyncRun.__table__.select())).all()
        # The winner's feed run and its connection's row; the loser never started a run.
        assert sorted((r.scope, r.scope_id) for r in runs) == [
            ("connection", seeded.connection_id),
            ("feed", seeded.feed_id),
        ]
        assert await session.leases.of(seeded.feed_id) is None  # released
