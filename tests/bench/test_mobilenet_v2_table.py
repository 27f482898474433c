"""The full-size table of the issue: zoo MobileNet v2 fp32 on host LiteRT, TVM, onnxruntime, Node wasm."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mobilenet_v2_table(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_mobilenet_v2.py"), "--out", str(tmp_path),
                           "--runs", "20", "--warmup", "3"], capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(proc.stdout)
    for row in ("LiteRT (XNNPACK)", "TVM (llvm, untuned)", "onnxruntime"):
        assert row in proc.stdout
    assert (tmp_path / "mobilenet_v2.png").stat().st_size > 10_000
    assert (tmp_path / "host-tflite.json").is_file()
