"""The int8 promise on real data: MNIST-trained zoo models keep their accuracy after edgec's
post-training quantization, as artifacts a runtime loads (LiteRT with XNNPACK)."""

import numpy as np
import pytest

import edgec
from edgec.datasets import mnist, mnist_calibration
from edgec.runtimes.litert import LiteRTRuntime


def _top1(runtime, x, y) -> float:
    preds = [int(np.argmax(runtime.run([x[i:i + 1]])[0])) for i in range(len(x))]
    return float(np.mean(np.array(preds) == y))


@pytest.mark.parametrize("name", ["mobilenet_v2", "resnet18"])
def test_int8_top1_within_half_a_point_of_float(name, tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=mnist_calibration(200))
    spec = f"zoo:{name}?weights=mnist"
    fp32 = edgec.compile(spec, target="x86_64-fp32", out_dir=tmp_path, formats=["tflite"])
    int8 = edgec.compile(spec, target="arm64-int8", out_dir=tmp_path, formats=["tflite"], calibration=calib)
    x, y = mnist("test")
    float_top1 = _top1(LiteRTRuntime(fp32.paths["tflite"]), x, y)
    int8_top1 = _top1(LiteRTRuntime(int8.paths["tflite"]), x, y)
    assert float_top1 > 0.95  # the shipped weights are really trained
    assert int8_top1 >= float_top1 - 0.005, (float_top1, int8_top1)
    # Weights shrink 4x (the whitepaper's size claim); the whole file a little less, as every
    # channel carries a float scale and an int64 zero point (MobileNet v2: 0.35x).
    assert int8.paths["tflite"].stat().st_size < 0.4 * fp32.paths["tflite"].stat().st_size
    assert int8.report["quantization"]["calibration"]["samples"] == 200


def test_w4a8_target_end_to_end(tmp_path):
    """arm64-int4: int4 weights except the first and last layer, verified like int8."""
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=mnist_calibration(100).reshape(100, -1))
    int8 = edgec.compile("zoo:mlp?weights=mnist", target="arm64-int8", out_dir=tmp_path, calibration=calib)
    int4 = edgec.compile("zoo:mlp?weights=mnist", target="arm64-int4", out_dir=tmp_path, calibration=calib)
    mixed = int4.report["quantization"]["mixed_precision"]
    bits = list(mixed["bits"].values())
    assert bits[0] == 8 and bits[-1] == 8 and 4 in bits
    assert int4.report["artifacts"][0]["lowering"]["quantized"]["int4_tensors"] == mixed["int4_layers"]
    # The MLP's largest layer is its first, kept int8; the middle one's weights halve.
    # (hidden x hidden weights: half a byte saved per weight).
    hidden = len(int4.report["quantization"]["layers"][1]["weight_scales"])
    saved = int8.paths["tflite"].stat().st_size - int4.paths["tflite"].stat().st_size
    assert saved >= 0.45 * hidden * hidden
    x, y = mnist("test")
    assert _top1(LiteRTRuntime(int4.paths["tflite"]), x.reshape(len(x), 1, -1)[:, 0], y) > 0.9
