import numpy as np
import pytest
import torch
from onnx import helper

from edgec.quantization.calibration import CalibrationError, collect_statistics, load_calibration
from helpers import build_model, random_weight


def _model():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    return build_model(nodes, {"x": [1, 1, 4, 4]}, ["y"], {"w": random_weight(2, 1, 3, 3)})


def test_npz_by_name_single_key_and_flat_rows(tmp_path):
    m = _model()
    x = np.random.default_rng(0).standard_normal((5, 1, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "named.npz", x=x)
    np.savez(tmp_path / "other.npz", images=x.reshape(5, 16))  # flat rows, e.g. MNIST's 784
    for name in ("named.npz", "other.npz"):
        data = load_calibration(tmp_path / name, m)
        assert len(data) == 5 and data.samples[2][0].shape == (1, 1, 4, 4)
        np.testing.assert_array_equal(data.samples[2][0], x[2:3])
    np.save(tmp_path / "a.npy", x)
    assert len(load_calibration(tmp_path / "a.npy", m, limit=3)) == 3


def test_iterables_of_batches_and_labels():
    m = _model()
    batches = [(torch.randn(2, 1, 4, 4), torch.tensor([0, 1])) for _ in range(3)]  # a DataLoader's shape
    data = load_calibration(batches, m)
    assert len(data) == 6 and not data.is_random


def test_image_folder(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((8, 8)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    data = load_calibration(tmp_path, _model(), preprocess="mean=0.5,std=0.25")
    assert len(data) == 3
    assert data.samples[0][0].shape == (1, 1, 4, 4) and data.samples[0][0].min() < 0


def test_errors_say_how_to_give_data(tmp_path):
    m = _model()
    with pytest.raises(CalibrationError, match="needs calibration data.*--calib"):
        load_calibration(None, m)
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3, 3), np.float32))
    with pytest.raises(CalibrationError, match=r"cannot use .*bad.npz as calibration data: the array for input 'x' has shape \[4, 3, 3\]"):
        load_calibration(tmp_path / "bad.npz", m)
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "missing.npz", m)
    with pytest.raises(CalibrationError, match="--calib-preprocess 'size=3'"):
        load_calibration(tmp_path, m, preprocess="size=3")
    assert load_calibration("random", m, limit=4).is_random


def test_statistics_match_the_activations():
    m = _model()
    w = m.graph.initializers["w"].const_value.numpy()
    x = np.random.default_rng(1).standard_normal((8, 1, 4, 4)).astype(np.float32)
    stats = collect_statistics(m, load_calibration(x, m))
    y = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)).numpy()
    assert stats.ranges["y"] == pytest.approx((float(y.min()), float(y.max())), rel=1e-5)
    np.testing.assert_allclose(stats.channel_means["y"], y.mean(axis=(0, 2, 3)), rtol=1e-4)
