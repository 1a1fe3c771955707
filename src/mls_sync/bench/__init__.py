"""The benchmarks: our sync against the product spec's figures and a naive strategy.

`run_benchmark(BenchOptions(...))` is the per-agent benchmark (every connection its own
credential, so its own feed); `run_feed_benchmark(FeedBenchOptions(...))` the feeds benchmark
(one MLS Grid market replicated once as a shared feed, beside the per-agent model, in one run).
Each seeds the sandbox MLS and a throwaway database, runs its cases and returns their figures;
`mls-sync bench [feeds]` and `benchmarks/bench_sync.py` print them.
"""

from mls_sync.bench.feeds import FeedBenchOptions, FeedCase, FeedReport, run_feed_benchmark
from mls_sync.bench.runner import BenchOptions, BenchReport, Case, run_benchmark, spec_seconds

__all__ = [
    "BenchOptions",
    "BenchReport",
    "Case",
    "FeedBenchOptions",
    "FeedCase",
    "FeedReport",
    "run_benchmark",
    "run_feed_benchmark",
    "spec_seconds",
]
