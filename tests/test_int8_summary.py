"""The demo's closing table (examples/mnist/int8_summary.py): float vs int8 top-1 on the MNIST test
split, size and interleaved latency ratios, from two real TFLite files."""

import sys
from pathlib import Path

import numpy as np

import edgec
from edgec.datasets import mnist_calibration

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "mnist"))

import int8_summary  # noqa: E402


def test_summary_of_a_trained_mlp(tmp_path, capsys):
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=mnist_calibration(100).reshape(100, -1))
    fp32 = edgec.compile("zoo:mlp?weights=mnist", target="arm64-fp32", out_dir=tmp_path, formats=["tflite"])
    int8 = edgec.compile("zoo:mlp?weights=mnist", target="arm64-int8", out_dir=tmp_path, formats=["tflite"],
                         calibration=calib)
    s = int8_summary.summarize(int8.paths["tflite"], fp32.paths["tflite"], runs=20)
    assert s["images"] == 1000 and s["float_top1"] > 0.9 and abs(s["int8_top1"] - s["float_top1"]) < 0.02
    assert 0.2 < s["int8_bytes"] / s["float_bytes"] < 0.4  # weights 4x smaller, plus scales
    assert s["latency_ratio"].ratio > 0

    assert int8_summary.main([str(int8.paths["tflite"]), "--float", str(fp32.paths["tflite"]), "--runs", "5"]) == 0
    out = capsys.readouterr().out
    assert "MNIST test split (1000 images)" in out and "int8/float" in out


def test_missing_file_is_named(tmp_path, capsys):
    assert int8_summary.main([str(tmp_path / "none.tflite"), "--float", str(tmp_path / "f.tflite")]) == 2
    assert "none.tflite: no such file" in capsys.readouterr().err
