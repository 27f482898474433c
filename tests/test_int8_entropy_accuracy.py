"""Entropy (KL) calibration keeps the accuracy min/max calibration gets, on the MNIST-trained
MobileNet v1, whose first activations are spike-dominated (MNIST's background) and once
collapsed to 44% top-1 under the KL criterion. Measured in LiteRT on the 1,000-image test split."""

import numpy as np
import pytest

import edgec
from edgec.datasets import mnist, mnist_calibration
from edgec.runtimes.litert import LiteRTRuntime


def _top1(path, x, y) -> float:
    rt = LiteRTRuntime(path)
    preds = [int(np.argmax(rt.run([x[i:i + 1]])[0])) for i in range(len(x))]
    return float(np.mean(np.array(preds) == y))


@pytest.mark.slow
def test_entropy_within_a_point_of_minmax_on_mobilenet_v1(tmp_path):
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=mnist_calibration(200))
    x, y = mnist("test")
    top1 = {}
    for method in ("minmax", "entropy"):
        art = edgec.compile("zoo:mobilenet_v1?weights=mnist", target="x86_64-int8", out_dir=tmp_path / method,
                            formats=["tflite"], calibration=calib, calib_method=method)
        assert art.report["quantization"]["calibration"]["method"] == method
        top1[method] = _top1(art.paths["tflite"], x, y)
    assert top1["minmax"] > 0.95, top1
    assert top1["entropy"] >= top1["minmax"] - 0.01, top1
