"""`mls-sync bench` (and `benchmarks/bench_sync.py`): the benchmark, printed as a table or JSON.

One size runs in this process. `--sizes 100x1,1000x10,...` runs each size in a process of its
own (this module, with `--json`), so one size's memory never counts in the next one's peak.
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
    "full": "full check",
    "idle": "incremental, idle",
    "changed": "incremental, changed",
    "baseline": "naive baseline",
}


def bench(
    listings: Annotated[int, typer.Option(min=1, help="listings N")] = 100,
    connections: Annotated[int, typer.Option(min=1, help="connections C, one credential each")] = 1,
    changed: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share changed in the MLS before case (c)")
    ] = 0.05,
    posts: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of listings with a published post")
    ] = 0.2,
    latency_ms: Annotated[float, typer.Option(min=0.0, help="sandbox latency per request")] = 150,
    rps: Annotated[float, typer.Option(min=0.1, help="MLS requests/s per credential")] = 2.0,
    baseline_max: Annotated[
        int, typer.Option(min=1, help="listings the naive baseline really asks about")
    ] = 200,
    sizes: Annotated[
        str | None,
        typer.Option(
            help="several sizes, NxC comma-separated (e.g. 100x1,1000x10): overrides "
            "--listings/--connections; each runs in its own process"
        ),
    ] = None,
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
    common = {
        "changed": changed,
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
    if not all(run["peakRssPerCase"] for run in runs):
        console.print("peak RSS is the process's high-water mark (it could not be reset per case)")


def _times(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def main() -> None:
    typer.run(bench)


if __name__ == "__main__":
    main()
