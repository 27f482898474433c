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
    lo, hi = stats.channel_ranges["y"]
    np.testing.assert_allclose(lo, y.min(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(hi, y.max(axis=(0, 2, 3)), rtol=1e-5)
    # Bias correction reads the mean of each weight layer's input.
    np.testing.assert_allclose(stats.channel_means["x"], x.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-7)


def _classifier(tail_op: str = "Reshape"):
    """Conv -> Relu -> GlobalAveragePool -> flatten to (1, 2) by a constant shape -> Gemm: the
    exported form whose batch is baked into the Reshape."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"])]
    init = {"w": random_weight(2, 1, 3, 3), "fc": random_weight(3, 2, seed=1), "shape": np.array([1, 2], np.int64)}
    if tail_op == "Reshape":
        nodes.append(helper.make_node("Reshape", ["p", "shape"], ["f"]))
    else:
        # A constant added with the batch baked in: no rewrite makes this batchable.
        init["bias_map"] = random_weight(1, 2, 1, 1, seed=2)
        init["shape"] = np.array([1, 2], np.int64)
        nodes += [helper.make_node("Concat", ["p", "bias_map"], ["cat"], axis=0),
                  helper.make_node("ReduceMean", ["cat"], ["m"], axes=[0], keepdims=1),
                  helper.make_node("Reshape", ["m", "shape"], ["f"])]
    nodes.append(helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1))
    return _with_shapes(build_model(nodes, {"x": [1, 1, 4, 4]}, ["y"], init, opset=13 if tail_op != "Reshape" else 21))


def _with_shapes(model):
    """Types and shapes on every tensor, as the compile pipeline's graphs have them."""
    from edgec.passes.shape_inference import infer_shapes_in_place

    infer_shapes_in_place(model)
    return model


def _reference_statistics(m, x):
    """Per tensor (min, max) from a plain onnxruntime run per sample, every tensor exposed."""
    from edgec.quantization.calibration import exposing_session

    sess, names = exposing_session(m, [o.name for n in m.graph for o in n.outputs])
    runs = [dict(zip(names, sess.run(None, {"x": x[i:i + 1]}))) for i in range(len(x))]
    return {n: (min(float(r[n].min()) for r in runs), max(float(r[n].max()) for r in runs)) for n in names}


@pytest.mark.parametrize("tail", ["Reshape", "Concat"])
def test_batched_calibration_agrees_with_one_sample_per_call(tail, monkeypatch):
    from edgec.quantization import batching

    m = _classifier(tail)
    x = np.random.default_rng(2).standard_normal((7, 1, 4, 4)).astype(np.float32)  # 7: a partial last batch
    sizes = []
    init = batching.BatchedRunner.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        sizes.append(self.batch_size)

    monkeypatch.setattr(batching.BatchedRunner, "__init__", recording_init)
    stats = collect_statistics(m, load_calibration(x, m))
    # The Reshape's baked-in batch is rewritten; a constant Concat operand is not, and the
    # mismatch on two samples sends calibration back to one sample per call.
    assert sizes == ([batching.batch_size_for(1)] if tail == "Reshape" else [1])
    reference = _reference_statistics(m, x)
    for name in ("c", "r", "p", "f", "y"):
        assert stats.ranges[name] == pytest.approx(reference[name], rel=1e-5, abs=1e-6), name


def test_batched_clone_rewrites_only_a_leading_batch():
    from edgec.quantization.batching import _batch_free_shape

    assert list(_batch_free_shape(np.array([1, 1280]), False)) == [-1, 1280]
    assert list(_batch_free_shape(np.array([1, -1, 64]), False)) == [0, -1, 64]
    assert _batch_free_shape(np.array([1, -1, 64]), True) is None  # allowzero: 0 would mean size 0
    assert _batch_free_shape(np.array([4, 1280]), False) is None


def test_statistics_follow_equalization_exactly():
    """The un-equalized graph's statistics, derived from the equalized graph's, equal a
    calibration of the un-equalized graph (what the compile report's 'without' figure uses)."""
    from edgec.passes.equalize import CrossLayerEqualization

    w1 = random_weight(4, 1, 3, 3, seed=1) * np.array([50.0, 0.02, 1.0, 4.0], np.float32).reshape(-1, 1, 1, 1)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["a"]),
             helper.make_node("Conv", ["a", "w2", "b2"], ["y"])]
    init = {"w1": w1, "b1": random_weight(4, seed=2), "w2": random_weight(3, 4, 1, 1, seed=3),
            "b2": random_weight(3, seed=4)}
    original = _with_shapes(build_model(nodes, {"x": [1, 1, 5, 5]}, ["y"], init))
    cle = CrossLayerEqualization()
    from edgec.ir import clone

    equalized = cle(clone(original)).model
    assert set(cle.channel_scales) == {"c1", "a"}
    x = np.random.default_rng(3).standard_normal((6, 1, 5, 5)).astype(np.float32)
    data = load_calibration(x, original)
    derived = collect_statistics(equalized, data).with_channels_scaled(cle.channel_scales)
    direct = collect_statistics(original, data)
    assert derived.ranges["a"] != collect_statistics(equalized, data).ranges["a"]  # equalization moved it
    for name in direct.ranges:
        assert derived.ranges[name] == pytest.approx(direct.ranges[name], rel=1e-5, abs=1e-6), name
    for name in direct.channel_means:
        np.testing.assert_allclose(derived.channel_means[name], direct.channel_means[name], rtol=1e-4, atol=1e-6)
    # A histogram method's range does not follow a rescaling: the caller must calibrate.
    assert collect_statistics(equalized, data, method="percentile").with_channels_scaled(cle.channel_scales) is None


def test_quantize_model_calibrates_tensors_its_statistics_lack():
    """Statistics gathered for the default quantized tensors, reused with a node excluded: the
    excluded Relu un-fuses its Conv, whose output then needs (and gets) a range."""
    from edgec.quantization import quantize_model, quantized_tensor_names

    m = _classifier("Reshape")
    x = np.random.default_rng(4).standard_normal((5, 1, 4, 4)).astype(np.float32)
    data = load_calibration(x, m)
    stats = collect_statistics(m, data, tensors=quantized_tensor_names(m))
    assert "c" not in stats.ranges  # fused into the Conv: never quantized, so not observed
    qdq, info = quantize_model(m, data, statistics=stats, exclude_nodes=frozenset({"relu"}))
    assert info["ranges"]["c"] == pytest.approx(_reference_statistics(m, x)["c"], rel=1e-5)
