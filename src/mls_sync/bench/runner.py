"""One benchmark size: seed, then run the four cases on the same data, in this process.

(a) our sync, first load (a connection's first sync loads its feed: every record the MLS
has, in the server's pages, then compares the held listings with that replica locally);
(b) our sync, incremental, nothing changed; (c) our sync, incremental after `changed` of the
listings changed in the MLS; (d) the spec's strategy, one request per listing (naive.py), on
at most `baseline_max` listings, its time extrapolated to every listing.

This is the per-agent model: every connection has its own credential, so its own private feed
(bench/fleet.py). The feeds benchmark (bench/feeds.py) measures one shared feed beside it.

Our cases run what the scheduler and the cron endpoint run (`actions.sync_all_users`) over
real HTTP against the sandbox servers, with their latency, on a throwaway SQLite database
(or `database_url`). The rate-limit floor of a case is the largest number of MLS requests any
one credential needed, divided by the budget: no client can be faster than that.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import SecretStr

from mls_sync.actions import sync_all_users
from mls_sync.bench import memory
from mls_sync.bench.fleet import Fleet, flip, seed_fleet
from mls_sync.bench.naive import run_naive, sample
from mls_sync.config import Settings
from mls_sync.runtime import open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import ResoSandbox
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.migrate import upgrade

# The product spec's expectation: 100 listings in about 30 s, 500 in 2 min, 1000 in 4 min.
SPEC_POINTS = ((0, 0.0), (100, 30.0), (500, 120.0), (1000, 240.0))


@dataclass(frozen=True)
class BenchOptions:
    listings: int = 100
    connections: int = 1
    changed: float = 0.05  # share of listings whose MLS status changes before case (c)
    posts: float = 0.2  # share of listings with a published post
    latency_ms: float = 150.0  # added by the sandbox servers to every request
    rps: float = 2.0  # request budget per MLS credential
    baseline_max: int = 200  # listings the naive baseline really asks about
    database_url: str | None = None  # default: SQLite in a temporary folder
    profile_dir: Path | None = None  # write a pyinstrument profile of each case there


@dataclass(frozen=True)
class Case:
    key: str  # "load" | "idle" | "changed" | "baseline"
    label: str
    seconds: float
    cpu_seconds: float  # this process's CPU time (every thread, the sandbox servers' too)
    mls_requests: int  # the baseline: extrapolated to every listing
    mls_requests_measured: int  # the requests the sandbox really received
    platform_requests: int
    peak_rss_bytes: int
    max_requests_per_credential: int
    floor_seconds: float
    changes_found: int  # listings updated (ours) or found different (baseline)
    unpublished_posts: int = 0
    errors: int = 0
    listings_measured: int = 0  # the baseline: listings it really asked about
    extrapolated: bool = False
    vs_baseline: float | None = None

    @property
    def vs_floor(self) -> float | None:
        return self.seconds / self.floor_seconds if self.floor_seconds else None


@dataclass
class BenchReport:
    options: BenchOptions
    cases: list[Case] = field(default_factory=list)
    peak_rss_per_case: bool = True  # False: a process-wide high-water mark (see memory.py)
    seed_seconds: float = 0.0
    fleet: Fleet | None = None  # what was seeded
    flipped: dict[str, str] = field(default_factory=dict)  # changed before case (c)

    @property
    def spec_seconds(self) -> float:
        return spec_seconds(self.options.listings)

    def case(self, key: str) -> Case:
        return next(c for c in self.cases if c.key == key)


def spec_seconds(listings: int) -> float:
    """The product spec's figure for `listings`, read off its three points (linear between
    them and, past 1000, at its last rate of 0.24 s a listing)."""
    for (n0, s0), (n1, s1) in itertools.pairwise(SPEC_POINTS):
        if listings <= n1:
            return s0 + (s1 - s0) * (listings - n0) / (n1 - n0)
    n_last, s_last = SPEC_POINTS[-1]
    return s_last * listings / n_last


CaseStarted = Callable[[str], None]


async def run_benchmark(
    options: BenchOptions, *, on_case: CaseStarted | None = None
) -> BenchReport:
    latency = options.latency_ms / 1000.0
    mls = ResoSandbox(tokens=(), latency=latency)
    platforms = PlatformSandbox()
    platforms.latency_seconds = latency
    report = BenchReport(options)
    with (
        tempfile.TemporaryDirectory(prefix="mls-sync-bench-") as tmp,
        BackgroundServer(mls.app) as mls_server,
        BackgroundServer(platforms.app) as platform_server,
    ):
        settings = Settings(
            data_dir=Path(tmp),
            database_url=options.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}",
            token_keys=SecretStr(TokenCipher.generate_key()),
            mls_requests_per_second=options.rps,
            # str values, some for SecretStr fields: Settings validates them into their types.
            **PlatformSandbox.settings_for(platform_server.url),  # type: ignore[arg-type]
        )
        db = Database(settings.async_database_url)
        try:
            await upgrade(db)
            async with open_runtime(settings, db=db) as runtime:
                started = time.perf_counter()
                fleet = await seed_fleet(
                    db,
                    runtime.cipher,
                    mls,
                    platforms,
                    mls_url=mls_server.url,
                    listings=options.listings,
                    connections=options.connections,
                    posts=options.posts,
                    requests_per_second=options.rps,
                )
                report.seed_seconds = time.perf_counter() - started
                probe = _Probe(mls, platforms, options.rps, options.profile_dir)

                async def ours() -> tuple[int, int, int]:
                    response = await sync_all_users(engine=runtime.engine, trigger="bench")
                    data = response.data
                    assert data is not None  # sync_all_users always answers with totals
                    # listings that failed, and connections whose feed run failed
                    failed = sum(1 for c in data.connections if not c.success)
                    errors = len(data.errors) + failed
                    return data.updated_listings, data.unpublished_posts, errors

                _started(on_case, "load")
                load = await probe.measure("load", "ours, first load", ours)
                _started(on_case, "idle")
                idle = await probe.measure("idle", "ours, incremental, idle", ours)
                report.flipped = flip(mls, fleet, options.changed)
                _started(on_case, "changed")
                share = f"{options.changed:.0%}"
                changed = await probe.measure(
                    "changed", f"ours, incremental, {share} changed", ours
                )
                _started(on_case, "baseline")
                baseline = await _baseline(probe, db, mls_server.url, fleet, options)
                report.fleet = fleet
                report.peak_rss_per_case = probe.peak_per_case
                report.cases = [
                    *(
                        replace(c, vs_baseline=c.seconds / baseline.seconds)
                        for c in (load, idle, changed)
                    ),
                    baseline,
                ]
        finally:
            await db.dispose()
    return report


def _started(on_case: CaseStarted | None, key: str) -> None:
    if on_case is not None:
        on_case(key)


class _Probe:
    """Counts what one case cost: wall time, requests per server and credential, peak RSS."""

    def __init__(
        self,
        mls: ResoSandbox,
        platforms: PlatformSandbox,
        rps: float,
        profile_dir: Path | None = None,
    ) -> None:
        self._mls = mls
        self._platforms = platforms
        self._rps = rps
        self._profile_dir = profile_dir
        self.peak_per_case = True

    async def measure(
        self, key: str, label: str, work: Callable[[], Awaitable[tuple[int, int, int]]]
    ) -> Case:
        mls_before = self._mls.request_count
        platform_before = len(self._platforms.requests)
        self.peak_per_case &= memory.reset_peak()
        with profiled(self._profile_dir, key):
            started, cpu_started = time.perf_counter(), time.process_time()
            changes, unpublished, errors = await work()
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
        peak = memory.peak_bytes()
        per_credential = Counter(r.token for r in self._mls.requests[mls_before:])
        most = max(per_credential.values(), default=0)
        requests = sum(per_credential.values())
        return Case(
            key=key,
            label=label,
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            mls_requests=requests,
            mls_requests_measured=requests,
            platform_requests=len(self._platforms.requests) - platform_before,
            peak_rss_bytes=peak,
            max_requests_per_credential=most,
            floor_seconds=most / self._rps,
            changes_found=changes,
            unpublished_posts=unpublished,
            errors=errors,
        )


async def _baseline(
    probe: _Probe, db: Database, mls_url: str, fleet: Fleet, options: BenchOptions
) -> Case:
    """The naive strategy on a sample, its figures scaled to every listing: each credential
    gets its share of the sample, and its time grows linearly with the lookups it must pace."""
    picked = sample(fleet.agents, options.baseline_max)

    async def naive() -> tuple[int, int, int]:
        run = await run_naive(db, mls_url, picked, requests_per_second=options.rps)
        return run.mismatches, 0, run.failures

    measured = await probe.measure("baseline", "naive", naive)
    listings = fleet.listing_count
    scale = listings / max(len(picked), 1)
    per_credential = max(len(agent.listing_keys) for agent in fleet.agents)
    extrapolated = len(picked) < listings
    return replace(
        measured,
        label="naive, 1 request per listing" + (" (extrapolated)" if extrapolated else ""),
        seconds=measured.seconds * scale,
        cpu_seconds=measured.cpu_seconds * scale,
        mls_requests=listings,  # one per listing, by construction
        max_requests_per_credential=per_credential,
        floor_seconds=per_credential / options.rps,
        changes_found=round(measured.changes_found * scale),
        listings_measured=len(picked),
        extrapolated=extrapolated,
    )


@contextmanager
def profiled(folder: Path | None, name: str) -> Iterator[None]:
    """With a folder, a pyinstrument profile of this thread (not the sandbox servers') is
    written there as NAME.html and NAME.txt (pyinstrument is a dev dependency)."""
    if folder is None:
        yield
        return
    from pyinstrument import Profiler

    folder.mkdir(parents=True, exist_ok=True)
    profiler = Profiler(async_mode="enabled")
    with profiler:
        yield
    (folder / f"{name}.html").write_text(profiler.output_html())
    (folder / f"{name}.txt").write_text(profiler.output_text(unicode=True, show_all=False))
