"""Device dispatch: from a devices.yaml entry to a runtime that runs an artifact there.

    kind   runtime                                   options in devices.yaml
    host   LiteRT / TVM / onnxruntime, in process    -
    qemu   runtimes/qemu.py (emulated, correctness)  root: folder of the aarch64 userland
    rpc    runtimes/rpc.py (TVM RPC tracker)         tracker: HOST:PORT, key: KEY, session_timeout_s
    wasm   runtimes/wasm.py (LiteRT.js)              engine: node | chromium
    cuda   TVM's CUDA runtime, in process            index: GPU number

`status(device)` says whether a device can be used now and, if not, what to do; it starts
nothing heavy (no emulator, no browser, no RPC session).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from edgec.errors import EdgecError
from edgec.targets import Device, host_arch

KINDS = ("host", "qemu", "rpc", "wasm", "cuda")
_SUFFIX_FORMAT = {".tflite": "tflite", ".so": "tvm", ".onnx": "onnx"}


@dataclasses.dataclass(frozen=True)
class DeviceStatus:
    device: Device
    reachable: bool
    why: str


class DeviceUnavailableError(EdgecError):
    """The device exists in devices.yaml but cannot be used from here now."""


def status(device: Device, registry_dir: Path | None = None) -> DeviceStatus:
    kind, opts = device.kind, device.options
    if kind == "host":
        ok, why = True, f"this machine ({host_arch()}), in process"
    elif kind == "qemu":
        from edgec.runtimes.qemu import qemu_status

        ok, why = qemu_status(_resolve(opts.get("root"), registry_dir))
    elif kind == "rpc":
        from edgec.runtimes.rpc import tracker_status

        if not opts.get("tracker") or not opts.get("key"):
            ok, why = False, "devices.yaml entry needs `tracker: HOST:PORT` and `key: NAME`"
        else:
            ok, why = tracker_status(str(opts["tracker"]), str(opts["key"]))
    elif kind == "wasm":
        from edgec.runtimes.wasm import wasm_status

        ok, why = wasm_status(str(opts.get("engine", "node")), _resolve(opts.get("node_dir"), registry_dir))
    elif kind == "cuda":
        ok, why = cuda_status(int(opts.get("index", 0)))
    else:
        ok, why = False, f"unknown device kind '{kind}'; expected one of {', '.join(KINDS)}"
    return DeviceStatus(device, ok, why)


def cuda_status(index: int = 0) -> tuple[bool, str]:
    if shutil.which("nvidia-smi") is None and not Path("/dev/nvidiactl").exists():
        return False, ("no NVIDIA GPU on this machine (no driver: nvidia-smi and /dev/nvidiactl absent). "
                       "CUDA artifacts build here (target cuda-fp16); run them with `edgec bench --device "
                       f"gpu{index}` on a machine with a GPU, or scripts/cuda_check.py there")
    import tvm

    if not tvm.cuda(index).exist:
        return False, (f"an NVIDIA driver is present but TVM sees no CUDA device {index} "
                       "(is this TVM wheel built with CUDA? check `python -c \"import tvm; print(tvm.cuda(0).exist)\"`)")
    return True, f"CUDA device {index}: {tvm.cuda(index).device_name}"


def pick_format(paths: dict[str, Path], device: Device) -> str:
    """Which of an Artifact's files to run on `device`."""
    order = {
        "host": ["tflite", "tvm"],
        "qemu": ["tvm", "tflite"],
        "rpc": ["tvm", "tflite"],
        "wasm": ["tflite"],
        "cuda": ["tvm"],
    }.get(device.kind, ["tflite", "tvm"])
    for fmt in order:
        path = paths.get(fmt)
        if path is None:
            continue
        if fmt == "tvm" and not _library_runs_on(path, device):
            continue
        return fmt
    raise EdgecError(f"none of the artifact's files ({', '.join(paths) or 'none'}) runs on device "
                     f"'{device.name}' ({device.kind}, {device.arch}); compile for a target that lists it")


def open_on_device(path: str | Path, device: Device, *, threads: int | None = None,
                   registry_dir: Path | None = None):
    """A runtime for `path` on `device`; raises DeviceUnavailableError saying what to do."""
    path = Path(path)
    st = status(device, registry_dir)
    if not st.reachable:
        raise DeviceUnavailableError(f"device '{device.name}' is not available: {st.why}")
    opts = device.options
    if path.suffix == ".so" and device.kind in ("qemu", "rpc") and path.is_file():
        # Checked here, before an emulator starts or a board is booked.
        from edgec.runtimes.tvmrt import elf_architecture

        arch = elf_architecture(path)
        if arch != device.arch:
            raise EdgecError(f"{path}: built for {arch}; device '{device.name}' is {device.arch}. "
                             f"Compile for a {device.arch} target (e.g. {device.arch}-fp32)")
    if device.kind == "host":
        from edgec.artifact import open_runtime

        return open_runtime(path, num_threads=threads)
    if device.kind == "qemu":
        from edgec.runtimes.qemu import QemuRuntime

        return QemuRuntime(path, num_threads=threads, root=_resolve(opts.get("root"), registry_dir))
    if device.kind == "rpc":
        from edgec.runtimes.rpc import RPCRuntime

        return RPCRuntime(path, tracker=str(opts["tracker"]), key=str(opts["key"]), num_threads=threads,
                          session_timeout_s=int(opts.get("session_timeout_s", 600)))
    if device.kind == "wasm":
        from edgec.runtimes.wasm import WasmRuntime

        return WasmRuntime(path, engine=str(opts.get("engine", "node")), num_threads=threads,
                           root=_resolve(opts.get("node_dir"), registry_dir))
    if device.kind == "cuda":
        from edgec.runtimes.tvmrt import TVMRuntime

        if path.suffix != ".so":
            raise EdgecError(f"{path}: device '{device.name}' runs TVM CUDA libraries (.so from a cuda-* target)")
        return _synced(TVMRuntime)(path, device="cuda")
    raise EdgecError(f"device '{device.name}' has unknown kind '{device.kind}'")


def _synced(runtime_class):
    """A TVM runtime whose invoke waits for the GPU: kernel launches return before the work ends."""

    class SyncedTVMRuntime(runtime_class):
        def invoke(self) -> None:
            super().invoke()
            self._device.sync()

        def time(self, inputs, warmup=10, repeat=50):
            timing = super().time(inputs, warmup, repeat)
            timing.covers += "; followed by a device synchronize (the GPU work, not just the launch)"
            return timing

    return SyncedTVMRuntime


def _library_runs_on(path: Path, device: Device) -> bool:
    from edgec.runtimes.tvmrt import elf_architecture

    try:
        arch = elf_architecture(path)
    except OSError:
        return False
    if device.kind == "cuda":
        return arch == host_arch()
    return arch == device.arch


def _resolve(value, registry_dir: Path | None):
    """Relative paths in devices.yaml are relative to that file's folder."""
    if value is None:
        return None
    p = Path(str(value))
    return p if p.is_absolute() or registry_dir is None else registry_dir / p
