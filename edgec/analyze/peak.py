"""The machine's measured peak: the two numbers a roofline is drawn from.

- Compute: float32 GEMM through numpy's BLAS (OpenBLAS, using the CPU's widest vectors), the
  fastest float arithmetic this machine is known to reach, limited to the same number of
  threads the artifact runs with.
- Memory: a large array copy (read + write), far bigger than the last-level cache.

Each is the best of a few runs: a peak is what the machine can do, not what it does on
average while other processes compete for it.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

GEMM_SIZE = 1024
COPY_BYTES = 256 << 20  # 8x a 32 MiB L3
RUNS = 5


@dataclasses.dataclass(frozen=True)
class MachinePeak:
    flops_per_s: float
    bytes_per_s: float
    threads: int
    how: str = (f"compute: best of {RUNS} float32 {GEMM_SIZE}^3 GEMMs (numpy BLAS); memory: best of "
                f"{RUNS} copies of {COPY_BYTES >> 20} MiB (bytes read + written)")

    @property
    def ridge_intensity(self) -> float:
        """FLOPs per byte where the roofline's memory slope meets its compute ceiling."""
        return self.flops_per_s / self.bytes_per_s

    def attainable(self, intensity: float) -> float:
        """The roofline: the most FLOP/s a kernel of this arithmetic intensity can reach."""
        return min(self.flops_per_s, intensity * self.bytes_per_s)

    def as_dict(self) -> dict:
        return {"gflops_per_s": self.flops_per_s / 1e9, "gbytes_per_s": self.bytes_per_s / 1e9,
                "ridge_flops_per_byte": self.ridge_intensity, "threads": self.threads, "how": self.how}


def measure_peak(threads: int = 1) -> MachinePeak:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads, user_api="blas"):
        flops = _best_gemm_flops()
    return MachinePeak(flops_per_s=flops, bytes_per_s=_best_copy_bandwidth(), threads=threads)


def _best_gemm_flops() -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    b = rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)  # warm up: page faults, BLAS thread start
    best = min(_seconds(lambda: np.matmul(a, b, out=out)) for _ in range(RUNS))
    return 2.0 * GEMM_SIZE ** 3 / best


def _best_copy_bandwidth() -> float:
    src = np.ones(COPY_BYTES // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    best = min(_seconds(lambda: np.copyto(dst, src)) for _ in range(RUNS))
    return 2.0 * COPY_BYTES / best


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
