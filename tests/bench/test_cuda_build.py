"""CUDA: the TVM CUDA targets build here without a GPU; with none, verification and gpu0 say so."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import edgec
from edgec.bench.devices import cuda_status
from edgec.cli import main
from edgec.errors import EdgecError
from edgec.lower.tvm.cuda import compiles_at_build, find_nvcc

ROOT = Path(__file__).resolve().parents[2]


def test_cuda_targets_build_with_device_code(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "cuda_check.py"), "--out", str(tmp_path),
                           "--models", "mlp", "--build-only"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {r["target"] for r in report["results"]} == {"cuda-fp32", "cuda-fp16"}
    for entry in report["results"]:
        lib = Path(entry["library"])
        sidecar = json.loads(lib.with_name(lib.name + ".json").read_text())
        assert sidecar["tvm_target"]["kind"] == "cuda"
        assert entry["cuda_kernels"] >= 1 or b"\x50\xed\x55\xba" in lib.read_bytes()  # CUDA C or a fatbin
        if report["gpu"] is None:
            assert not entry["verified"] and entry["where"].startswith("not run: no GPU")
        else:
            assert entry["verified"] and entry["max_rel_error"] is not None
    fp16 = next(Path(e["library"]) for e in report["results"] if e["target"] == "cuda-fp16")
    if report["gpu"] is None:  # the embedded CUDA C shows the fp16 compute
        assert b"half" in fp16.read_bytes()


def test_cuda_build_without_nvcc_is_one_clear_error_where_kernels_compile_at_build(tmp_path, monkeypatch):
    if not compiles_at_build():
        pytest.skip("no CUDA driver here: TVM embeds CUDA C and compiles nothing at build")
    monkeypatch.setattr("edgec.lower.tvm.cuda.find_nvcc", lambda: None)
    with pytest.raises(EdgecError, match="needs the CUDA compiler nvcc.*nvidia-cuda-nvcc"):
        edgec.compile("zoo:mlp", target="cuda-fp32", out_dir=tmp_path, formats=["tvm"], verify=False)
    assert not list(tmp_path.glob("*.so"))


def test_this_machine_has_an_nvcc_for_cuda_builds():
    assert find_nvcc() is not None  # /usr/local/cuda here; `pip install nvidia-cuda-nvcc` elsewhere


def test_gpu0_without_a_gpu_says_so_plainly(tmp_path, capfd):
    ok, _ = cuda_status(0)
    if ok:
        return  # a GPU machine: scripts/cuda_check.py is the check there
    art = tmp_path / "m.so"
    art.write_bytes(b"\x7fELF")
    code = main(["bench", str(art), "--device", "gpu0"])
    err = capfd.readouterr().err  # the CLI runs commands in a worker process
    assert code != 0
    assert "no NVIDIA GPU" in err and "gpu0" in err
