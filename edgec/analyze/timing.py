"""Per-kernel time of a TVM artifact, measured in the Relax VM on this machine.

The VM calls an instrument before and after every call instruction; timing between the two
gives each kernel's time, in execution order, which is the order of the layer table that
lower_tvm wrote (edgec/lower/tvm/layers.py). The instrument costs a few microseconds a call
(a Python callback each side), so the whole model is also timed without it: the report
gives both, and the per-kernel sum says how much the instrument added.

LiteRT's Python API exposes no per-operator timing, so TFLite artifacts are not covered here.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from edgec.errors import EdgecError
from edgec.lower.tvm.signature import read_signature
from edgec.runtimes.tvmrt import TVMRuntime


def time_kernels(library: str | Path, symbols: list[str], warmup: int = 3, repeat: int = 20,
                 seed: int = 0) -> tuple[list[list[float]], list[float], int]:
    """(per-kernel samples in ms, whole-model samples in ms without the instrument, threads).

    `symbols` is the expected kernel call order (the layer table's); a run that calls other
    kernels means the table belongs to another build, which is an error.
    """
    runtime = TVMRuntime(library)  # checks architecture and signature, sizes TVM's thread pool
    inputs = _random_inputs(library, seed)
    whole = runtime.time(inputs, warmup=warmup, repeat=repeat).samples_ms

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(runtime.path)), tvm.cpu(0))
    tensors = [tvm.runtime.tensor(a, device=tvm.cpu(0)) for a in inputs]
    wanted = set(symbols)
    calls: list[tuple[str, float]] = []
    started = [0]

    def instrument(_func, symbol, before_run, _ret, *_args):
        if str(symbol) in wanted:
            if before_run:
                started[0] = time.perf_counter_ns()
            else:
                calls.append((str(symbol), (time.perf_counter_ns() - started[0]) / 1e6))
        return 0

    vm.set_instrument(instrument)
    function = read_signature(library).function
    samples: list[list[float]] = [[] for _ in symbols]
    for run in range(warmup + repeat):
        calls.clear()
        vm[function](*tensors)
        if [s for s, _ in calls] != symbols:
            raise EdgecError(
                f"{library}: the kernels the VM ran ({len(calls)}) do not match its layer table "
                f"({len(symbols)}); the .layers.json belongs to another build: rebuild the artifact"
            )
        if run >= warmup:
            for i, (_, ms) in enumerate(calls):
                samples[i].append(ms)
    return samples, whole, runtime.threads


def _random_inputs(library: str | Path, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in read_signature(library).inputs:
        if np.issubdtype(spec.dtype, np.floating):
            arrays.append(rng.standard_normal(spec.shape).astype(spec.dtype))
        else:
            arrays.append(rng.integers(0, 8, spec.shape).astype(spec.dtype))
    return arrays
