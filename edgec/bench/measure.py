"""Take the samples: one artifact (`benchmark`), or two interleaved A B A B (`benchmark_vs`).

The timed region is whatever the runtime's `time()` times (one invoke with inputs already
set; see runtimes/base.py) and every result says so in its `covers` field. Inputs are fixed
random tensors of the artifact's signature unless given: latency of these models does not
depend on the values.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgec.bench.affinity import format_cpus, parse_cpus, pinned
from edgec.bench.devices import open_on_device, pick_format
from edgec.bench.result import BenchResult, describe_artifact, machine_info, versions
from edgec.bench.stats import Ratio, median_ratio
from edgec.errors import EdgecError
from edgec.fsutil import atomic_write_text
from edgec.runtimes.base import Timing
from edgec.targets import Device, load_registry

Log = Callable[[str], None]


def benchmark(artifact_or_path: Any, device: str = "host", runs: int = 50, warmup: int = 10,
              threads: int | None = None, *, cpus: str | set[int] | None = None,
              inputs: Sequence[np.ndarray] | None = None, fmt: str | None = None,
              devices: str | Path | None = None, log: Log | None = None) -> BenchResult:
    """Time an artifact on a device and return every sample with its statistics.

    artifact_or_path: an Artifact from edgec.compile (its file for the device is picked:
    fmt="tflite"/"tvm" to choose) or a path to a .tflite / .so / .onnx file.
    threads: the runtime's thread count (None: the runtime's default). cpus: pin to these
    CPUs ("0-3" or a set), host only.
    """
    _check_counts(runs, warmup)
    log = log or (lambda msg: None)
    dev, registry_dir = _device(device, devices)
    path = _artifact_path(artifact_or_path, dev, fmt)
    cpu_set = _cpu_set(cpus, dev)
    with pinned(cpu_set) as mask:
        log(f"loading {path.name} on {dev.name}")
        rt = open_on_device(path, dev, threads=threads, registry_dir=registry_dir)
        feed = list(inputs) if inputs is not None else random_inputs(rt.inputs)
        log(f"timing {path.name} on {dev.name}: {warmup} warm-up + {runs} runs")
        try:
            timing = rt.time(feed, warmup=warmup, repeat=runs)
        finally:
            _close(rt)
    return _result(path, dev, rt, timing, threads, mask if dev.kind == "host" else None)


@dataclasses.dataclass
class VsResult:
    """Two artifacts timed interleaved; ratio is median(b) / median(a): above 1, b is slower."""

    a: BenchResult
    b: BenchResult
    ratio: Ratio

    def to_json(self) -> dict:
        return {"schema": "edgec-bench-vs", "version": 1, "order": "interleaved: A B A B ...",
                "a": self.a.to_json(), "b": self.b.to_json(),
                "ratio_b_over_a": self.ratio.to_json()}

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")


def benchmark_vs(a: Any, b: Any, device: str = "host", runs: int = 50, warmup: int = 10,
                 threads: int | None = None, *, cpus: str | set[int] | None = None,
                 fmt: str | None = None, devices: str | Path | None = None,
                 log: Log | None = None) -> VsResult:
    """Time `a` and `b` alternately in one process (on one device), so drift hits both alike."""
    _check_counts(runs, warmup)
    log = log or (lambda msg: None)
    dev, registry_dir = _device(device, devices)
    path_a, path_b = _artifact_path(a, dev, fmt), _artifact_path(b, dev, fmt)
    with pinned(_cpu_set(cpus, dev)) as mask:
        log(f"loading {path_a.name} and {path_b.name} on {dev.name}")
        rt_a = open_on_device(path_a, dev, threads=threads, registry_dir=registry_dir)
        rt_b = open_on_device(path_b, dev, threads=threads, registry_dir=registry_dir)
        feed_a, feed_b = random_inputs(rt_a.inputs), random_inputs(rt_b.inputs)
        log(f"timing A B A B on {dev.name}: {warmup} warm-up + {runs} runs each")
        try:
            if hasattr(rt_a, "time_interleaved"):  # out-of-process runtimes alternate on the far side
                t_a, t_b = rt_a.time_interleaved(rt_b, feed_a, feed_b, warmup=warmup, repeat=runs)
            else:
                t_a, t_b = time_interleaved(rt_a, rt_b, feed_a, feed_b, warmup, runs)
        finally:
            _close(rt_a)
            _close(rt_b)
    host_mask = mask if dev.kind == "host" else None
    res_a = _result(path_a, dev, rt_a, t_a, threads, host_mask)
    res_b = _result(path_b, dev, rt_b, t_b, threads, host_mask)
    return VsResult(a=res_a, b=res_b, ratio=median_ratio(t_b.samples_ms, t_a.samples_ms, paired=True))


def time_interleaved(rt_a, rt_b, feed_a, feed_b, warmup: int, runs: int) -> tuple[Timing, Timing]:
    """In-process A B A B: each runtime keeps its inputs bound, so a sample is one invoke."""
    rt_a.set_inputs(rt_a._check_inputs(feed_a))
    rt_b.set_inputs(rt_b._check_inputs(feed_b))
    for _ in range(warmup):
        rt_a.invoke()
        rt_b.invoke()
    samples_a, samples_b = [], []
    for _ in range(runs):
        for rt, samples in ((rt_a, samples_a), (rt_b, samples_b)):
            t0 = time.perf_counter_ns()
            rt.invoke()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
    covers = Timing([], 0, "").covers + "; taken interleaved with the other artifact"
    return (Timing(samples_a, warmup, rt_a.name, covers), Timing(samples_b, warmup, rt_b.name, covers))


def _close(rt) -> None:
    close = getattr(rt, "close", None)
    if close is not None:
        close()


def random_inputs(specs, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        shape = tuple(max(int(d), 1) for d in spec.shape)
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            out.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            out.append(rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape).astype(dtype))
        elif dtype.kind == "b":
            out.append(rng.integers(0, 2, shape).astype(dtype))
        else:
            raise EdgecError(f"input '{spec.name}' has dtype {dtype}; pass inputs= explicitly")
    return out


def _result(path: Path, dev: Device, rt, timing: Timing, threads: int | None,
            host_mask: list[int] | None) -> BenchResult:
    info = dict(getattr(rt, "last_info", {}) or {})
    emulated = bool(getattr(rt, "emulated", False))
    effective = info.get("threads")
    if effective is None and hasattr(rt, "threads"):
        effective = getattr(rt, "threads")
    runtime = {
        "name": info.get("runtime") or getattr(rt, "runtime_name", None) or rt.name,
        "threads": threads,  # as asked; None = the runtime's default
        "threads_effective": effective,
        "cpu_affinity": format_cpus(host_mask) if host_mask is not None else None,
    }
    device = {"name": dev.name, "kind": dev.kind, "arch": dev.arch, "emulated": emulated,
              "machine": machine_info() if dev.kind in ("host", "cuda", "wasm") else
              {"machine": info.get("machine"), "key": info.get("key"), "via": machine_info()["hostname"]}}
    vers = versions()
    vers.update({f"device:{k}": v for k, v in (info.get("versions") or {}).items()})
    notes = []
    if emulated:
        notes.append("EMULATED: samples measure qemu-user translation on the host, not ARM latency; "
                     "use them to compare artifacts on this device only")
    return BenchResult(artifact=describe_artifact(path), device=device, runtime=runtime,
                       samples_ms=[float(s) for s in timing.samples_ms], warmup=timing.warmup,
                       covers=timing.covers, versions=vers, notes=notes)


def _device(name: str, devices: str | Path | None) -> tuple[Device, Path]:
    reg = load_registry(devices)
    return reg.device(name), reg.path.parent


def _artifact_path(artifact_or_path: Any, dev: Device, fmt: str | None) -> Path:
    paths = getattr(artifact_or_path, "paths", None)
    if paths is not None:  # an edgec Artifact
        chosen = fmt or pick_format(paths, dev)
        if chosen not in paths:
            raise EdgecError(f"the artifact has no {chosen} file (has: {', '.join(paths)})")
        return Path(paths[chosen])
    path = Path(artifact_or_path)
    if not path.is_file():
        raise EdgecError(f"{path}: artifact not found")
    return path


def _cpu_set(cpus, dev: Device) -> set[int] | None:
    if cpus is None or cpus == "":
        return None
    if dev.kind != "host":
        raise EdgecError(f"--cpus pins threads of this process; device '{dev.name}' runs elsewhere "
                         "(pin on the device itself, e.g. taskset on the board)")
    return set(cpus) if isinstance(cpus, (set, frozenset, list, tuple)) else parse_cpus(cpus)


def _check_counts(runs: int, warmup: int) -> None:
    if runs < 2:
        raise EdgecError(f"--runs {runs}: need at least 2 samples for statistics (50 or more to gate on)")
    if warmup < 0:
        raise EdgecError(f"--warmup {warmup}: must be 0 or more")
