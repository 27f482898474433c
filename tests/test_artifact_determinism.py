"""Artifacts are byte-deterministic, and compiles that share an output folder do not disturb each
other: the same model and options give the same bytes, run after run and side by side."""

import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz.cli_run import EDGEC, snapshot  # noqa: E402
from fuzz.files import tiny_onnx  # noqa: E402

ARTIFACTS = ("m.x86_64-int8.tflite", "m.x86_64-int8.so", "m.x86_64-int8.so.json")


def _compile_args(model: Path, calib: Path, out: Path) -> list[str]:
    return [*EDGEC, "compile", str(model), "-t", "x86_64-int8", "--calib", str(calib), "--name", "m", "-o", str(out)]


def test_same_model_same_bytes_and_concurrent_compiles_into_one_folder(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(3).standard_normal((8, 1, 3, 8, 8)).astype(np.float32))

    serial = tmp_path / "serial"
    subprocess.run(_compile_args(model, calib, serial), check=True, capture_output=True, timeout=600)
    first = snapshot(serial)
    assert set(ARTIFACTS) <= set(first), sorted(first)

    shared = tmp_path / "shared"
    procs = [subprocess.Popen(_compile_args(model, calib, shared), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    together = snapshot(shared)
    for name in ARTIFACTS:
        assert together[name] == first[name], name  # byte-identical to the serial compile
    assert not [p for p in shared.iterdir() if p.name.startswith(".")]  # no staging folder left behind
