"""CUDA: the TVM CUDA module builds here without a GPU; with none, gpu0 says so plainly."""

import json
import subprocess
import sys
from pathlib import Path

from edgec.bench.devices import cuda_status
from edgec.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_cuda_module_builds_without_a_gpu(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "cuda_check.py"), "--out", str(tmp_path),
                           "--size", "16", "--build-only"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    lib = Path(report["built"])
    assert lib.is_file() and lib.with_name(lib.name + ".json").is_file()
    assert report["cuda_kernels"] >= 1  # CUDA C source with __global__ kernels is embedded
    assert json.loads(lib.with_name(lib.name + ".json").read_text())["tvm_target"]["kind"] == "cuda"


def test_gpu0_without_a_gpu_says_so_plainly(tmp_path, capsys):
    ok, _ = cuda_status(0)
    if ok:
        return  # a GPU machine: scripts/cuda_check.py is the check there
    art = tmp_path / "m.so"
    art.write_bytes(b"\x7fELF")
    code = main(["bench", str(art), "--device", "gpu0"])
    err = capsys.readouterr().err
    assert code != 0
    assert "no NVIDIA GPU" in err and "gpu0" in err
