"""edgec bench: latency measurement you can trust, on the host and on edgec's devices.

    from edgec.bench import benchmark
    result = benchmark("out/m.arm64-fp32.tflite", device="host", runs=50)
    result.stats.median_ms, result.stats.median_ci_ms, result.samples_ms

Modules: stats (median, percentiles, bootstrap intervals), result (the JSON schema),
measure (taking samples, interleaved A/B), gate (the regression check), devices (device
dispatch and reachability), affinity (CPU pinning), plots, probe (tiny artifacts that
prove a device runs things).
"""

from edgec.bench.gate import RegressionError, Verdict, check_regression, parse_fraction
from edgec.bench.measure import VsResult, benchmark, benchmark_vs
from edgec.bench.result import BenchResult

__all__ = [
    "BenchResult", "VsResult", "Verdict", "RegressionError",
    "benchmark", "benchmark_vs", "check_regression", "parse_fraction",
]
