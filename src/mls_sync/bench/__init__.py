"""The benchmark: our sync against the product spec's figures and a naive strategy.

`run_benchmark(BenchOptions(...))` seeds the sandbox MLS and a throwaway database, runs the
cases and returns their figures; `mls-sync bench` and `benchmarks/bench_sync.py` print them.
"""

from mls_sync.bench.runner import BenchOptions, BenchReport, Case, run_benchmark, spec_seconds

__all__ = ["BenchOptions", "BenchReport", "Case", "run_benchmark", "spec_seconds"]
