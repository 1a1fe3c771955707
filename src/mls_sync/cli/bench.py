"""`mls-sync bench [feeds]` (and `benchmarks/bench_sync.py`): the benchmarks, printed as a
table or JSON.

`mls-sync bench` is the per-agent benchmark: N listings over C connections, each with its own
credential. One size runs in this process; `--sizes 100x1,1000x10,...` runs each size in a
process of its own (this module, with `--json`), so one size's memory never counts in the next
one's peak. `mls-sync bench feeds` is the feeds benchmark: one MLS Grid market replicated once
as a shared feed, beside the per-agent model and the spec's strategy, in one run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mls_sync.cli.support import err, out
from mls_sync.observability import configure_logging

CASE_NAMES = {
    "load": "first load",
    "idle": "incremental, idle",
    "changed": "incremental, changed",
    "baseline": "naive baseline",
}
MODEL_NAMES = {  # in the order the table shows them
    "feed": "shared feed",
    "per-agent": "per-agent",
    "private": "private",
    "naive": "spec",
}
FEEDS = "feeds benchmark (mls-sync bench feeds)"
PER_AGENT = "per-agent benchmark (mls-sync bench)"


def bench(
    mode: Annotated[
        str | None,
        typer.Argument(
            metavar="feeds",
            help="feeds: the feeds benchmark (one shared MLS Grid feed, beside the per-agent "
            "model); without it: the per-agent benchmark",
            show_default=False,
        ),
    ] = None,
    listings: Annotated[
        int, typer.Option(min=1, help="listings N", rich_help_panel=PER_AGENT)
    ] = 100,
    connections: Annotated[
        int,
        typer.Option(min=1, help="connections C, one credential each", rich_help_panel=PER_AGENT),
    ] = 1,
    sizes: Annotated[
        str | None,
        typer.Option(
            help="several sizes, NxC comma-separated (e.g. 100x1,1000x10): overrides "
            "--listings/--connections; each runs in its own process",
            rich_help_panel=PER_AGENT,
        ),
    ] = None,
    records: Annotated[
        int, typer.Option(min=1, help="records in the MLS Grid market", rich_help_panel=FEEDS)
    ] = 100_000,
    agents: Annotated[
        int, typer.Option(min=1, help="agents in the shared feed", rich_help_panel=FEEDS)
    ] = 1_000,
    held: Annotated[
        int, typer.Option(min=1, help="listings each agent holds", rich_help_panel=FEEDS)
    ] = 20,
    page_size: Annotated[
        int,
        typer.Option(min=1, help="records a request (MLS Grid: 5,000)", rich_help_panel=FEEDS),
    ] = 5_000,
    private_agents: Annotated[
        int,
        typer.Option(
            min=1, help="agents with their own credential (private feeds)", rich_help_panel=FEEDS
        ),
    ] = 100,
    per_agent_sample: Annotated[
        int,
        typer.Option(
            min=1,
            help="per-agent model: agents really measured, scaled to --agents",
            rich_help_panel=FEEDS,
        ),
    ] = 5,
    sales: Annotated[
        int, typer.Option(min=1, help="takedown case: sales", rich_help_panel=FEEDS)
    ] = 200,
    sale_minutes: Annotated[
        float,
        typer.Option(
            min=0.1, help="takedown case: simulated minutes they spread over", rich_help_panel=FEEDS
        ),
    ] = 10.0,
    cadence_seconds: Annotated[
        float,
        typer.Option(min=1.0, help="takedown case: the feed's cadence", rich_help_panel=FEEDS),
    ] = 60.0,
    changed: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="share changed in the MLS before the changed case: of the listings "
            "(default 0.05), of the market (feeds, default 0.01)",
            show_default=False,
        ),
    ] = None,
    posts: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of listings with a published post")
    ] = 0.2,
    latency_ms: Annotated[float, typer.Option(min=0.0, help="sandbox latency per request")] = 150,
    rps: Annotated[
        float, typer.Option(min=0.1, max=1000.0, help="MLS requests/s per credential")
    ] = 2.0,
    baseline_max: Annotated[
        int, typer.Option(min=1, help="listings the naive baseline really asks about")
    ] = 200,
    database_url: Annotated[
        str | None, typer.Option(help="default: a throwaway SQLite file")
    ] = None,
    profile: Annotated[
        Path | None, typer.Option(help="write a pyinstrument profile of each case here")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Benchmark our sync against the rate-limit floor and the spec's one-request-per-listing
    strategy, on the sandbox MLS with a set latency and budget."""
    configure_logging(level="WARNING", fmt="json")
    if mode not in (None, "feeds"):
        raise typer.BadParameter(f"{mode!r}: the only benchmark named is feeds", param_hint="MODE")
    if mode == "feeds":
        if sizes is not None:
            raise typer.BadParameter("is for the per-agent benchmark", param_hint="--sizes")
        feeds = {
            "records": records,
            "agents": agents,
            "held": held,
            "page_size": page_size,
            "private_agents": private_agents,
            "per_agent_sample": per_agent_sample,
            "sales": sales,
            "sale_minutes": sale_minutes,
            "cadence_seconds": cadence_seconds,
            "changed": 0.01 if changed is None else changed,
            "posts": posts,
            "latency_ms": latency_ms,
            "rps": rps,
            "baseline_max": baseline_max,
            "database_url": database_url,
            "profile_dir": profile,
        }
        run = _run_feeds(feeds, quiet=as_json)
        if as_json:
            print(json.dumps({"feeds": run}, indent=2))
        else:
            print_feeds(run)
        return
    common = {
        "changed": 0.05 if changed is None else changed,
        "posts": posts,
        "latency_ms": latency_ms,
        "rps": rps,
        "baseline_max": baseline_max,
        "database_url": database_url,
    }
    if sizes is None:
        runs = [_run_here(listings, connections, common, profile, quiet=as_json)]
    else:
        runs = [
            _run_apart(n, c, common, profile and profile / f"{n}x{c}", quiet=as_json)
            for n, c in _parse_sizes(sizes)
        ]
    if as_json:
        print(json.dumps({"runs": runs}, indent=2))
    else:
        print_runs(runs)


def _run_feeds(options: dict[str, Any], *, quiet: bool) -> dict[str, Any]:
    from mls_sync.bench import FeedBenchOptions, run_feed_benchmark
    from mls_sync.bench.report import feed_run_json

    def started(case: str) -> None:
        if not quiet:
            err.print(f"[dim]feeds benchmark: {case}...[/dim]")

    report = asyncio.run(run_feed_benchmark(FeedBenchOptions(**options), on_case=started))
    return feed_run_json(report)


def _run_here(
    listings: int, connections: int, common: dict[str, Any], profile: Path | None, *, quiet: bool
) -> dict[str, Any]:
    from mls_sync.bench import BenchOptions, run_benchmark
    from mls_sync.bench.report import run_json

    def started(case: str) -> None:
        if not quiet:
            err.print(f"[dim]{listings} listings x {connections} connections: {case}...[/dim]")

    options = BenchOptions(
        listings=listings, connections=connections, profile_dir=profile, **common
    )
    return run_json(asyncio.run(run_benchmark(options, on_case=started)))


def _run_apart(
    listings: int,
    connections: int,
    common: dict[str, Any],
    profile: Path | None,
    *,
    quiet: bool,
) -> dict[str, Any]:
    if not quiet:
        err.print(f"[dim]{listings} listings x {connections} connections...[/dim]")
    command = [sys.executable, "-m", "mls_sync.cli.bench", "--json"]
    command += ["--listings", str(listings), "--connections", str(connections)]
    for name, value in {**common, "profile": profile}.items():
        if value is not None:
            command += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        err.print(done.stderr[-2000:])
        raise typer.Exit(1)
    runs: list[dict[str, Any]] = json.loads(done.stdout)["runs"]
    return runs[0]


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    parsed = []
    for item in text.split(","):
        n, sep, c = item.strip().lower().partition("x")
        if not sep or not n.isdigit() or not c.isdigit() or int(n) < 1 or int(c) < 1:
            raise typer.BadParameter(f"{item!r} is not NxC, e.g. 1000x10", param_hint="--sizes")
        parsed.append((int(n), int(c)))
    return parsed


def print_runs(runs: list[dict[str, Any]]) -> None:
    # Not wrapped when redirected to a file (the README's table is printed that way).
    console = out if out.is_terminal else Console(width=160)
    first = runs[0]
    table = Table(
        title=(
            f"Sync benchmark: sandbox latency {first['latencyMs']:g} ms, "
            f"{first['rps']:g} MLS requests/s per credential"
        )
    )
    columns = ("N x C", "case", "wall s", "CPU s", "MLS req", "platform req", "peak RSS MB")
    for column in (*columns, "floor s", "x floor", "x baseline"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for run in runs:
        size = f"{run['listings']} x {run['connections']}"
        for case in run["cases"]:
            name = CASE_NAMES[case["case"]]
            if case["extrapolated"]:
                name += f" (extrapolated from {case['listingsMeasured']})"
            table.add_row(
                size,
                name,
                f"{case['seconds']:.2f}",
                f"{case['cpuSeconds']:.2f}",
                str(case["mlsRequests"]),
                str(case["platformRequests"]),
                f"{case['peakRssMb']:.0f}",
                f"{case['floorSeconds']:.2f}",
                _times(case["vsFloor"]),
                _times(case["vsBaseline"]),
            )
            size = ""
        table.add_section()
    console.print(table)
    spec = {run["listings"]: run["specSeconds"] for run in runs}
    console.print(
        "The product spec expects about "
        + ", ".join(f"{seconds:.0f} s for {n} listings" for n, seconds in spec.items())
        + f"; {first['changed']:.0%} of the listings changed before the changed case."
    )
    for run in runs:
        for case in run["cases"]:
            if case["errors"]:
                console.print(
                    f"{run['listings']} x {run['connections']}, {CASE_NAMES[case['case']]}: "
                    f"{case['errors']} errors (failed listings or connections)"
                )
    if not all(run["peakRssPerCase"] for run in runs):
        console.print("peak RSS is the process's high-water mark (it could not be reset per case)")


def print_feeds(run: dict[str, Any]) -> None:
    console = out if out.is_terminal else Console(width=180)
    cap = run["dailyCap"]
    table = Table(
        title=(
            f"Feeds benchmark: {run['records']:,} records (MLS Grid mode, pages of "
            f"{run['pageSize']:,}), {run['agents']:,} agents x {run['held']} listings, sandbox "
            f"latency {run['latencyMs']:g} ms, {run['rps']:g} MLS requests/s per credential"
        )
    )
    columns: tuple[str, ...] = ("model", "case", "MLS req", "key-only", "lookups", "plat req")
    columns += ("wall s", "CPU s", "RSS MB", "floor s", "x floor", "req/day", f"of {cap:,}")
    for column in (*columns, "scaled from"):
        left = column in ("model", "case")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    order = list(MODEL_NAMES)
    model = None
    for case in sorted(run["cases"], key=lambda c: order.index(c["model"])):
        if model is not None and case["model"] != model:
            table.add_section()
        model = case["model"]
        per_day, share = case["requestsPerDay"], case["shareOfDailyCap"]
        scaled = ""
        if case["extrapolated"] and model == "per-agent":
            scaled = f"{case['measured']} agents"
        elif case["extrapolated"]:
            scaled = f"{case['measured']} listings"
        table.add_row(
            MODEL_NAMES[model],
            case["label"],
            f"{case['mlsRequests']:,}",
            str(case["keyOnlyRequests"]),
            str(case["lookupRequests"]),
            str(case["platformRequests"]),
            f"{case['seconds']:.2f}",
            f"{case['cpuSeconds']:.2f}",
            f"{case['peakRssMb']:.0f}",
            f"{case['floorSeconds']:.2f}",
            _times(case["vsFloor"]),
            "once" if per_day is None else f"{per_day:,}",
            "" if share is None else f"{share:.1%}",
            scaled,
        )
    console.print(table)
    cases = {case["case"]: case for case in run["cases"]}
    load, changed, down = cases["load"], cases["changed"], cases["takedown"]
    lines = [
        f"First load: {run['recordsLoaded']:,} of {run['records']:,} records in the replica, "
        f"{load['errors']} errors.",
        f"Changed: {run['changedRecords']:,} records of the market changed, "
        f"{run['heldChanges']} of them held: {changed['changesFound']} of "
        f"{changed['changesExpected']} held changes applied, {changed['unpublishedPosts']} of "
        f"{changed['postsExpected']} sold listings' posts taken down.",
        f"Takedown, {run['cadenceSeconds']:g} s cadence: {run['sales']} sales over "
        f"{run['saleMinutes']:g} simulated minutes, {down['cycles']} cycles: p50 "
        f"{down['latencyP50']:.1f} s, p99 {down['latencyP99']:.1f} s, max "
        f"{down['latencyMax']:.1f} s from the MLS change to the platform's delete; "
        f"{down['takedowns']} of {down['postsExpected']} posts down.",
    ]
    day = run["requestsPerDay"]
    lines.append(
        f"A day on the vendor token, 15-minute cadence (idle cycles and a reconciliation): "
        f"shared feed {day['feed']:,} requests ({day['feed'] / cap:.1%} of {cap:,}), "
        f"per-agent model {day['perAgent']:,} ({day['perAgent'] / cap:.0%})."
    )
    lines.append(
        f"The shared feed at a {run['cadenceSeconds']:g} s cadence: "
        f"{day['feedAtTakedownCadence']:,} requests a day "
        f"({day['feedAtTakedownCadence'] / cap:.1%})."
    )
    for case in run["cases"]:
        resumed = case["cycles"] > 1 and case["label"] == "first load"
        if resumed:
            lines.append(
                f"The {MODEL_NAMES[case['model']]} first load took {case['cycles']} cycles: "
                f"{case['errors']} feed runs failed part-way ({case['failure']}) and resumed "
                "from their bookmark in the next cycle (all measured)."
            )
        elif case["failure"]:
            lines.append(
                f"{MODEL_NAMES[case['model']]}, {case['label']}: a run failed ({case['failure']})"
            )
    if not run["peakRssPerCase"]:
        lines.append("peak RSS is the process's high-water mark (it could not be reset per case)")
    for line in lines:
        console.print(line)


def _times(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def main() -> None:
    typer.run(bench)


if __name__ == "__main__":
    main()
