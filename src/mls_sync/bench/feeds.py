"""The feeds benchmark: one MLS Grid market replicated once, as the operator's shared feed,
beside the per-agent model and the spec's one-request-per-listing strategy, on the same data in
one run (bench/market.py seeds it).

Cases, in this order:
- feed, first load: the shared feed's first run loads every record, in the largest pages
  (MLS Grid: 5,000 a request), then compares the held listings with the replica locally;
- feed, idle cycle: one request for the whole feed, whatever the number of members;
- per-agent, first load and idle: `per_agent_sample` agents, each with a connection of their
  own on the same vendor token (a private feed each: each loads the whole market, each idle
  cycle costs one request per agent), their figures scaled linearly to `agents` (they share one
  token, so its budget paces them one after another);
- private feeds, first load and idle: `private_agents` agents of a per-agent system, each with
  their own credential (one request per agent per idle cycle, on as many budgets);
- then `changed` of the market's records change in the MLS (held or not);
- feed, changed: one page; every held change applied, the sold listings' posts taken down;
- per-agent, changed: the same changes, one query per agent (scaled as above);
- feed, daily reconciliation (`full=True`): a key-only pull, no per-listing lookups;
- feed, takedown at a one-minute cadence: `sales` sales over `sale_minutes`, on a simulated
  clock (bench/takedown.py): p50 and p99 seconds from the sale to the platform's delete;
- naive: the spec's strategy, one `GET /Property('KEY')` per held listing on the one token
  (naive.py), on at most `baseline_max` listings, scaled to every held listing.

A cycle runs what the cron endpoint runs (`runs.sync_everyone`) over the case's feeds only:
`runs.sync_feeds` (run rows as cron writes them), then the outbox drain and the token care.
Each case reports requests (per kind: replication, key-only, lookups), wall and CPU seconds,
peak RSS, the floor (the busiest credential's requests / its budget) and that credential's
requests a day at the case's cadence, against MLS Grid's 40,000 a day per token.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pydantic import SecretStr

from mls_sync.bench import memory
from mls_sync.bench.market import (
    Market,
    change_market,
    seed_market,
    seed_per_agent,
    seed_private,
)
from mls_sync.bench.naive import run_naive, sample
from mls_sync.bench.runner import profiled
from mls_sync.bench.takedown import Cycle, Takedown, Tally, run_takedown
from mls_sync.config import Settings
from mls_sync.mls.client import KEY_FIELDS
from mls_sync.mls.profiles import PROFILES
from mls_sync.runtime import open_runtime
from mls_sync.sandbox.platforms import PlatformSandbox
from mls_sync.sandbox.reso import RecordedRequest, ResoSandbox
from mls_sync.sandbox.server import BackgroundServer
from mls_sync.store.crypto import TokenCipher
from mls_sync.store.database import Database
from mls_sync.store.migrate import upgrade
from mls_sync.store.models import MlsFeed
from mls_sync.sync import runs
from mls_sync.sync.engine import SyncEngine

DAY = 86_400.0
CADENCE = 900.0  # the product's 15 minutes
CYCLES_A_DAY = DAY / CADENCE  # 96
DAILY_CAP = PROFILES["mlsgrid"].requests_per_day or 40_000  # per MLS Grid token
_KEY_LOOKUP = re.compile(r"\b(ListingKey|ListingId) (eq|in) ")


@dataclass(frozen=True)
class FeedBenchOptions:
    records: int = 100_000  # the market's Property records
    agents: int = 1_000  # the shared feed's members (users)
    held: int = 20  # listings each agent holds
    posts: float = 0.2  # share of held listings with a published post
    changed: float = 0.01  # share of the market that changes before the changed cases
    latency_ms: float = 150.0  # added by the sandbox servers to every request
    rps: float = 2.0  # request budget per MLS credential
    page_size: int = 5_000  # records a request (MLS Grid's largest page)
    private_agents: int = 100  # agents with their own credential (private feeds)
    per_agent_sample: int = 5  # per-agent model: agents measured, scaled to `agents`
    sales: int = 200  # takedown case: sales...
    sale_minutes: float = 10.0  # ...spread over this many simulated minutes
    cadence_seconds: float = 60.0  # takedown case: the feed's cadence
    baseline_max: int = 200  # held listings the naive baseline really asks about
    database_url: str | None = None  # default: SQLite in a temporary folder
    profile_dir: Path | None = None  # write a pyinstrument profile of each case there


@dataclass(frozen=True)
class FeedCase:
    key: str
    label: str
    model: str  # "feed" | "per-agent" | "private" | "naive"
    seconds: float
    cpu_seconds: float  # this process's CPU time (the sandbox servers' threads too)
    mls_requests: int  # scaled where `extrapolated`
    mls_requests_measured: int  # what the sandboxes really received
    key_only_requests: int  # reconciliation pulls ($select the keys and timestamp)
    lookup_requests: int  # requests that ask about given listings (by key or ListingId)
    platform_requests: int
    peak_rss_bytes: int
    max_requests_per_credential: int  # scaled where `extrapolated`
    floor_seconds: float
    cycles_a_day: float | None  # how often the case recurs (None: once, a first load)
    changes_found: int  # listings updated (ours) or found different (naive)
    changes_expected: int | None = None
    unpublished_posts: int = 0
    posts_expected: int | None = None
    errors: int = 0
    failure: str | None = None  # why a run failed, when one did
    measured: int | None = None  # per-agent: agents measured; naive: listings asked about
    extrapolated: bool = False
    cycles: int = 1
    latency_p50: float | None = None  # takedown: seconds from the sale to the delete
    latency_p99: float | None = None
    latency_max: float | None = None
    takedowns: int | None = None  # takedown: posts measured

    @property
    def vs_floor(self) -> float | None:
        return self.seconds / self.floor_seconds if self.floor_seconds else None

    @property
    def requests_per_day(self) -> int | None:
        """The busiest credential's requests a day, the case repeated at its cadence."""
        if self.cycles_a_day is None:
            return None
        return round(self.max_requests_per_credential / self.cycles * self.cycles_a_day)


@dataclass
class FeedReport:
    options: FeedBenchOptions
    cases: list[FeedCase] = field(default_factory=list)
    peak_rss_per_case: bool = True
    seed_seconds: float = 0.0
    records_loaded: int = 0  # the shared feed's replica after its first load
    market: Market | None = None
    changes: dict[str, str] = field(default_factory=dict)  # the market's changes
    takedown: Takedown | None = None

    def case(self, key: str) -> FeedCase:
        return next(c for c in self.cases if c.key == key)

    def day(self, cadence: float = CADENCE) -> dict[str, int]:
        """Requests a day on the vendor token: idle cycles at `cadence` plus one
        reconciliation, for the shared feed and for the per-agent model."""
        cycles = DAY / cadence
        feed = self.case("idle").max_requests_per_credential * cycles
        agents = self.case("agents-idle").max_requests_per_credential * cycles
        # Each per-agent connection reconciles its own private feed: as many key-only pulls.
        reconciliation = self.case("reconcile").max_requests_per_credential
        return {
            "feed": round(feed + reconciliation),
            "perAgent": round(agents + reconciliation * self.options.agents),
        }


CaseStarted = Callable[[str], None]


async def run_feed_benchmark(
    options: FeedBenchOptions, *, on_case: CaseStarted | None = None
) -> FeedReport:
    latency = options.latency_ms / 1000.0
    mls = ResoSandbox(tokens=(), latency=latency, max_page_size=options.page_size)
    mls.vendor = "mlsgrid"
    private_mls = ResoSandbox(tokens=(), latency=latency, max_page_size=options.page_size)
    platforms = PlatformSandbox()
    platforms.latency_seconds = latency
    report = FeedReport(options)
    with (
        tempfile.TemporaryDirectory(prefix="mls-sync-bench-feeds-") as tmp,
        BackgroundServer(mls.app) as mls_server,
        BackgroundServer(private_mls.app) as private_server,
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
                _started(on_case, "seed")
                started = time.perf_counter()
                market = await seed_market(
                    db,
                    runtime.cipher,
                    mls,
                    platforms,
                    mls_url=mls_server.url,
                    records=options.records,
                    agents=options.agents,
                    held=options.held,
                    posts=options.posts,
                    rps=options.rps,
                )
                await seed_per_agent(
                    db,
                    runtime.cipher,
                    platforms,
                    market,
                    mls_url=mls_server.url,
                    sample=min(options.per_agent_sample, options.agents),
                    rps=options.rps,
                )
                await seed_private(
                    db,
                    runtime.cipher,
                    private_mls,
                    market,
                    mls_url=private_server.url,
                    agents=options.private_agents,
                    held=options.held,
                    rps=options.rps,
                )
                report.seed_seconds = time.perf_counter() - started
                report.market = market
                probe = _Probe([mls, private_mls], platforms, options.rps, options.profile_dir)
                await _run_cases(
                    report, probe, runtime.engine, db, mls, mls_server.url, on_case=on_case
                )
                report.peak_rss_per_case = probe.peak_per_case
        finally:
            await db.dispose()
    return report


async def _run_cases(
    report: FeedReport,
    probe: _Probe,
    engine: SyncEngine,
    db: Database,
    mls: ResoSandbox,
    mls_url: str,
    *,
    on_case: CaseStarted | None,
) -> None:
    o = report.options
    market = report.market
    assert market is not None
    shared = _cycle(engine, market.shared_plan())
    solo = _cycle(engine, market.solo_plan())
    private = _cycle(engine, market.private_plan())
    sampled = len(market.solo)
    scale = o.agents / sampled
    cases = report.cases

    async def case(
        key: str, label: str, model: str, work: Cycle, cycles_a_day: float | None
    ) -> FeedCase:
        _started(on_case, key)
        return await probe.measure(key, label, model, work, cycles_a_day=cycles_a_day)

    cases.append(await _load(case, "load", "feed", engine, db, market.shared_plan()))
    async with db.transaction() as session:
        report.records_loaded = await session.replica.count(market.feed_id)
    cases.append(await case("idle", "idle cycle", "feed", shared, CYCLES_A_DAY))
    load = await _load(case, "agents-load", "per-agent", engine, db, market.solo_plan())
    cases.append(_scaled(load, scale, sampled, o.rps))
    idle = await case("agents-idle", "idle cycle", "per-agent", solo, CYCLES_A_DAY)
    cases.append(_scaled(idle, scale, sampled, o.rps))
    cases.append(await _load(case, "private-load", "private", engine, db, market.private_plan()))
    cases.append(await case("private-idle", "idle cycle", "private", private, CYCLES_A_DAY))

    report.changes = changes = change_market(mls, market, o.changed)
    held = market.held_changes(changes, market.members)
    share = f"{o.changed:.0%} changed"
    changed = await case("changed", share, "feed", shared, CYCLES_A_DAY)
    cases.append(
        replace(changed, changes_expected=len(held), posts_expected=market.sold_posts(held))
    )
    solo_held = market.held_changes(changes, market.solo)
    solo_changed = await case("agents-changed", share, "per-agent", solo, CYCLES_A_DAY)
    cases.append(
        replace(
            _scaled(solo_changed, scale, sampled, o.rps),
            changes_expected=len(solo_held),
            posts_expected=market.sold_posts(solo_held, market.solo_posts),
        )
    )

    async def reconcile() -> Tally:
        outcome = await runs.sync_feed(engine, market.feed_id, trigger="bench", full=True)
        drained = await engine.unpublisher.drain()
        result = outcome.result
        return Tally(
            result.updated_listings,
            result.unpublished_posts + drained.unpublished,
            len(result.errors) + len(drained.errors) + (not outcome.success),
            None if outcome.success else outcome.message,
        )

    cases.append(await case("reconcile", "daily reconciliation", "feed", reconcile, 1))

    taken: list[Takedown] = []

    async def takedown() -> Tally:
        tally, measured = await run_takedown(
            db,
            mls,
            market,
            shared,
            sales=o.sales,
            window=o.sale_minutes * 60.0,
            cadence=o.cadence_seconds,
        )
        taken.append(measured)
        return tally

    async with db.transaction() as session:  # as an operator sets it (`feeds update`)
        feed = await session.get(MlsFeed, market.feed_id)
        if feed is not None:
            feed.cadence_seconds = round(o.cadence_seconds)
    minutes = o.cadence_seconds / 60.0
    label = f"takedown, {minutes:g} min cadence"
    down = await case("takedown", label, "feed", takedown, DAY / o.cadence_seconds)
    report.takedown = measured = taken[0]
    cases.append(
        replace(
            down,
            cycles=measured.cycles,
            changes_expected=o.sales,
            posts_expected=o.sales,
            latency_p50=measured.quantile(0.5),
            latency_p99=measured.quantile(0.99),
            latency_max=measured.quantile(1.0),
            takedowns=len(measured.latencies),
        )
    )
    _started(on_case, "naive")
    cases.append(await _naive(probe, db, mls_url, market, o))


def _started(on_case: CaseStarted | None, key: str) -> None:
    if on_case is not None:
        on_case(key)


def _cycle(engine: SyncEngine, plan: dict[str, list[str]]) -> Cycle:
    """What the cron endpoint runs (`runs.sync_everyone`), over these feeds only."""

    async def run() -> Tally:
        _, aggregated = await runs.sync_feeds(engine, plan, trigger="bench")
        drained = await engine.unpublisher.drain()
        await engine.unpublisher.keep_tokens_alive()
        failed = [c for c in aggregated.connections if not c.success]
        return Tally(
            aggregated.updated_listings,
            aggregated.unpublished_posts + drained.unpublished,
            len(aggregated.errors) + len(drained.errors) + len(failed),
            failed[0].message if failed else None,
        )

    return run


Measure = Callable[[str, str, str, Cycle, float | None], Awaitable[FeedCase]]


async def _load(
    case: Measure,
    key: str,
    model: str,
    engine: SyncEngine,
    db: Database,
    plan: dict[str, list[str]],
    *,
    tries: int = 3,
) -> FeedCase:
    """The feeds' first load: cycles over the feeds not loaded yet, until every one is (a
    load that fails part-way resumes from its last page in the next cycle, as in production),
    all measured; the case says how many cycles it took and how many feeds failed before."""
    cycles = 0

    async def load() -> Tally:
        nonlocal cycles
        tally = Tally()
        pending = plan
        while pending:
            if cycles == tries:
                raise RuntimeError(f"{len(pending)} feeds not loaded after {tries} cycles")
            tally.add(await _cycle(engine, pending)())
            cycles += 1
            async with db.transaction() as session:
                pending = {
                    feed_id: members
                    for feed_id, members in pending.items()
                    if (feed := await session.get(MlsFeed, feed_id)) is not None
                    and feed.loaded_at is None
                }
        return tally

    measured = await case(key, "first load", model, load, None)
    return replace(measured, cycles=cycles)


def _scaled(case: FeedCase, scale: float, sampled: int, rps: float) -> FeedCase:
    """A per-agent case measured on `sampled` agents, scaled to all of them: they share one
    token, whose budget paces them one after another, so requests and time grow linearly.
    Changes and posts stay as measured (they are the sample's)."""
    if scale == 1:
        return replace(case, measured=sampled)
    most = round(case.max_requests_per_credential * scale)
    return replace(
        case,
        seconds=case.seconds * scale,
        cpu_seconds=case.cpu_seconds * scale,
        mls_requests=round(case.mls_requests * scale),
        max_requests_per_credential=most,
        floor_seconds=most / rps,
        measured=sampled,
        extrapolated=True,
    )


async def _naive(
    probe: _Probe, db: Database, mls_url: str, market: Market, o: FeedBenchOptions
) -> FeedCase:
    """The spec's strategy on a sample of the held listings, scaled to every one: all of them
    go through the one vendor token, whose budget paces every lookup."""
    picked = sample(market.members, o.baseline_max)

    async def naive() -> Tally:
        run = await run_naive(db, mls_url, picked, requests_per_second=o.rps)
        return Tally(run.mismatches, 0, run.failures)

    measured = await probe.measure(
        "naive", "1 request a listing", "naive", naive, cycles_a_day=CYCLES_A_DAY
    )
    held = market.held_count
    scale = held / max(len(picked), 1)
    return replace(
        measured,
        seconds=measured.seconds * scale,
        cpu_seconds=measured.cpu_seconds * scale,
        mls_requests=held,  # one per listing, by construction
        max_requests_per_credential=held,  # one token
        floor_seconds=held / o.rps,
        changes_found=round(measured.changes_found * scale),
        measured=len(picked),
        extrapolated=len(picked) < held,
    )


def request_kind(request: RecordedRequest) -> str:
    """ "keys" (a reconciliation's key-only pull), "lookup" (about given listings) or
    "replication" (changes since a bookmark, or a first load)."""
    if request.path.startswith("/Property("):
        return "lookup"
    if request.params.get("$select", "").split(",")[: len(KEY_FIELDS)] == list(KEY_FIELDS):
        return "keys"
    if _KEY_LOOKUP.search(request.params.get("$filter", "")):
        return "lookup"
    return "replication"


class _Probe:
    """Counts what one case cost: wall and CPU time, requests per sandbox MLS, kind and
    credential, platform requests, peak RSS."""

    def __init__(
        self,
        sandboxes: Sequence[ResoSandbox],
        platforms: PlatformSandbox,
        rps: float,
        profile_dir: Path | None = None,
    ) -> None:
        self._sandboxes = sandboxes
        self._platforms = platforms
        self._rps = rps
        self._profile_dir = profile_dir
        self.peak_per_case = True

    async def measure(
        self,
        key: str,
        label: str,
        model: str,
        work: Callable[[], Awaitable[Tally]],
        *,
        cycles_a_day: float | None,
    ) -> FeedCase:
        before = [mls.request_count for mls in self._sandboxes]
        platform_before = len(self._platforms.requests)
        self.peak_per_case &= memory.reset_peak()
        with profiled(self._profile_dir, key):
            started, cpu_started = time.perf_counter(), time.process_time()
            tally = await work()
            seconds = time.perf_counter() - started
            cpu_seconds = time.process_time() - cpu_started
        peak = memory.peak_bytes()
        sent = [
            request
            for mls, count in zip(self._sandboxes, before, strict=True)
            for request in mls.requests[count:]
        ]
        per_credential = Counter(request.token for request in sent)
        kinds = Counter(request_kind(request) for request in sent)
        most = max(per_credential.values(), default=0)
        return FeedCase(
            key=key,
            label=label,
            model=model,
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            mls_requests=len(sent),
            mls_requests_measured=len(sent),
            key_only_requests=kinds["keys"],
            lookup_requests=kinds["lookup"],
            platform_requests=len(self._platforms.requests) - platform_before,
            peak_rss_bytes=peak,
            max_requests_per_credential=most,
            floor_seconds=most / self._rps,
            cycles_a_day=cycles_a_day,
            changes_found=tally.changes,
            unpublished_posts=tally.unpublished,
            errors=tally.errors,
            failure=tally.failure,
        )
