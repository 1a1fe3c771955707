"""Benchmark the sync: `python benchmarks/bench_sync.py --listings 1000 --connections 10` (the
per-agent benchmark) or `python benchmarks/bench_sync.py feeds` (the feeds benchmark).

The same command as `mls-sync bench` (see docs/performance.md); the logic lives in
`mls_sync.bench` so that the installed CLI can run it too.
"""

from mls_sync.cli.bench import main

if __name__ == "__main__":
    main()
