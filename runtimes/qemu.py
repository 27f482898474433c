"""Emulated arm64: run an arm64 TVM library or a TFLite file under qemu-user, for correctness.

The aarch64 userland (Debian's python3.11 plus aarch64 wheels of numpy, ai-edge-litert and
the TVM runtime) is prepared by scripts/setup-qemu-arm64.sh in .cache/qemu-arm64/. Each
round trip starts the device agent (runtimes/device_agent.py) under qemu: about 5-10 s of
interpreter start-up, then the artifact runs as real aarch64 code, instruction-translated.

Timings are reported, but marked emulated: they measure qemu's translation on this x86
host, not an ARM core, and edgec never presents them as ARM latency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgec.errors import EdgecError
from edgec.runtimes.remote import BatchReply, BatchRuntime, tail

AGENT = Path(__file__).with_name("device_agent.py")
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / ".cache" / "qemu-arm64"
SETUP = "scripts/setup-qemu-arm64.sh"
# Under emulation start-up alone takes seconds; a model run can take minutes.
TIMEOUT_S = 1800


def qemu_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("EDGEC_QEMU_ARM64") or DEFAULT_ROOT)


def qemu_status(root: str | Path | None = None) -> tuple[bool, str]:
    """(reachable, why) for the emulated arm64 device, without starting it."""
    root = qemu_root(root)
    if shutil.which("qemu-aarch64") is None:
        return False, "qemu-aarch64 not installed; run scripts/install-system-deps.sh (Debian package qemu-user)"
    if not (root / "READY").is_file() or not (root / "bin" / "python3").is_file():
        return False, f"aarch64 userland missing at {root}; run {SETUP}"
    return True, f"qemu-user aarch64 userland at {root} (emulated: correctness only, not ARM latency)"


class QemuRuntime(BatchRuntime):
    name = "qemu-arm64"
    emulated = True

    def __init__(self, path: str | Path, num_threads: int | None = None, root: str | Path | None = None):
        ok, why = qemu_status(root)
        if not ok:
            raise EdgecError(f"device qemu-arm64 is not available: {why}")
        super().__init__(path)
        self.root = qemu_root(root)
        self.num_threads = num_threads
        self.format = "tflite" if self.path.suffix == ".tflite" else "tvm"
        self.runtime_name = "litert" if self.format == "tflite" else "tvm"

    def _batch(self, jobs, warmup, runs):
        with tempfile.TemporaryDirectory(prefix="edgec-qemu-") as tmp:
            tmp = Path(tmp)
            artifacts = []
            for i, (rt, arrays) in enumerate(jobs):
                inputs = []
                for j, array in enumerate(arrays):
                    inputs.append(str(tmp / f"a{i}_in{j}.npy"))
                    np.save(inputs[-1], array)
                artifacts.append({"path": str(rt.path.resolve()), "format": rt.format, "inputs": inputs})
            request = {"artifacts": artifacts, "warmup": warmup, "runs": runs,
                       "threads": self.num_threads, "outputs_dir": str(tmp)}
            (tmp / "request.json").write_text(json.dumps(request))
            cmd = [str(self.root / "bin" / "python3"), str(AGENT), "run", str(tmp / "request.json")]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise EdgecError(f"qemu-arm64: {self.path.name} did not finish within {TIMEOUT_S} s under emulation; "
                                 "use fewer --runs") from None
            if proc.returncode != 0:
                raise EdgecError(f"qemu-arm64: the agent failed on {self.path.name} "
                                 f"(exit {proc.returncode}):\n{tail(proc.stderr + proc.stdout)}")
            reply = json.loads(proc.stdout.strip().splitlines()[-1])
            return [
                BatchReply(
                    samples_ms=r["samples_ms"],
                    outputs=[np.load(p) for p in r["outputs"]],
                    covers=r["covers"] + "; EMULATED under qemu-user (translation cost, not ARM latency)",
                    info={"runtime": r["runtime"], "threads": r["threads"], "machine": reply["machine"],
                          "versions": reply["versions"], "emulated": True},
                )
                for r in reply["results"]
            ]
