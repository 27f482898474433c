"""Where verification runs an artifact: this host, a device the target lists in `runs_on`, or
nowhere (with the reason, e.g. "not run: no GPU").

    TFLite, or a .so for this host's arch   -> the host runtime (LiteRT, TVM), when this CPU
                                               has the .so's features (cpu_features.py)
    a CUDA .so (arch cuda)                  -> TVM's CUDA runtime on a `kind: cuda` device
                                               (gpu0) when a GPU is there
    a .so for another arch (arm64)          -> a `kind: qemu` device (qemu-arm64) when it is
                                               set up: emulated, so correctness only

`where` names the place (it goes into the report); devices that are listed but not ready
give the reason the artifact was not run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edgec.runtimes.cpu_features import missing_flags
from edgec.targets import Target, host_arch, load_registry


def runs_on_this_host(fmt: str, target: Target) -> bool:
    """A host runtime (LiteRT, TVM's CPU runtime) loads and runs this artifact: TFLite, or a
    CPU .so for this arch whose instruction-set features (AVX-512, VNNI) this CPU has."""
    return fmt == "tflite" or (target.arch == host_arch() and target.tvm_target.get("kind", "llvm") == "llvm"
                               and not missing_flags(target.tvm_target))


def why_not_on_this_cpu(target: Target) -> str | None:
    """For a .so of this host's arch that this CPU cannot execute: which features it lacks."""
    if target.arch != host_arch() or target.tvm_target.get("kind", "llvm") != "llvm":
        return None
    missing = missing_flags(target.tvm_target)
    if not missing:
        return None
    return (f"target '{target.name}' uses {', '.join(missing)}, which this host's CPU lacks "
            "(it would die of an illegal instruction); run it on a machine that has them")


def verification_runtime(fmt: str, path: str | Path, target: Target):
    """(runtime, where) for verifying `path`, or (None, why not)."""
    from edgec.artifact import open_runtime

    if runs_on_this_host(fmt, target):
        return open_runtime(path), "host"
    lacking = why_not_on_this_cpu(target)
    if lacking:
        return None, f"not run: {lacking}"
    devices = _listed_devices(target)
    if target.arch == "cuda":
        from edgec.bench.devices import cuda_status
        from edgec.runtimes.tvmrt import TVMRuntime

        gpus = [d for d in devices if d.kind == "cuda"]
        if not gpus:
            return None, f"not run: target '{target.name}' lists no CUDA device in runs_on"
        index = int(gpus[0].options.get("index", 0))
        ok, why = cuda_status(index)
        if not ok:
            return None, f"not run: no GPU ({why})"
        return TVMRuntime(path, device="cuda"), f"{gpus[0].name} ({why})"
    emulators = [d for d in devices if d.kind == "qemu" and d.arch == target.arch]
    if not emulators:
        return None, f"not run: built for {target.arch}, and runs_on lists no {target.arch} device this host can reach"
    from edgec.runtimes.qemu import QemuRuntime, qemu_status

    root = emulators[0].options.get("root")
    ok, why = qemu_status(_device_path(root))
    if not ok:
        return None, f"not run: built for {target.arch}; {emulators[0].name} is not set up ({why})"
    return QemuRuntime(path, root=_device_path(root)), f"{emulators[0].name} (emulated: correctness only)"


def run_all(runtime, inputs: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
    """Outputs for every input set; an out-of-process runtime (qemu) gets them in one round trip."""
    from edgec.runtimes.remote import BatchRuntime

    if isinstance(runtime, BatchRuntime) and inputs:
        replies = runtime._batch([(runtime, [np.ascontiguousarray(a) for a in x]) for x in inputs],
                                 warmup=0, runs=1)
        return [reply.outputs for reply in replies]
    return [runtime.run(x) for x in inputs]


def _listed_devices(target: Target):
    registry = load_registry()
    return [registry.devices[name] for name in target.runs_on if name in registry.devices]


def _device_path(root):
    """devices.yaml paths are relative to its own folder."""
    if root is None:
        return None
    root = Path(root)
    return root if root.is_absolute() else load_registry().path.parent / root
