import numpy as np
import onnx_ir as ir
import pytest
from onnx import helper

from edgec.errors import PassError
from edgec.passes.quantize import QuantizeOptions, QuantizeQDQ
from edgec.quantization.calibration import collect_statistics, load_calibration
from edgec.quantization.scheme import activation_qparams
from edgec.passes.shape_inference import ShapeInference
from helpers import build_model as _build_model
from helpers import op_counts, random_weight, run_model


def build_model(*args, **kwargs):
    # The quantize pass runs after shape inference in every recipe: it needs each value's dtype.
    return ShapeInference()(_build_model(*args, **kwargs)).model


def _cnn():
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], group=8, pads=[1, 1, 1, 1], name="dw"),
        helper.make_node("MaxPool", ["c2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc"),
    ]
    init = {"w1": random_weight(8, 3, 3, 3, seed=1), "b1": random_weight(8, seed=2),
            "w2": random_weight(8, 1, 3, 3, seed=3), "b2": random_weight(8, seed=4),
            "w3": random_weight(5, 8, seed=5), "b3": random_weight(5, seed=6)}
    return build_model(nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 5]}, init)


def _calibrated(model, n=16, seed=0):
    data = load_calibration(np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32), model)
    return data, collect_statistics(model, data)


def _quantize(model, **opts):
    data, stats = _calibrated(model)
    q = QuantizeQDQ(QuantizeOptions(ranges=stats.ranges, **opts))
    return q(ir.from_proto(ir.to_proto(model))).model, q.details, stats


def _producer_op(value):
    p = value.producer()
    return p.op_type if p else None


def test_qdq_structure_follows_the_int8_spec():
    model = _cnn()
    qdq, details, _ = _quantize(model)
    ops = op_counts(qdq)
    # Weights and biases of conv1, dw and fc each behind a DQ; no float weight left.
    for node in qdq.graph:
        if node.op_type in ("Conv", "Gemm"):
            w_dq = node.inputs[1].producer()
            assert w_dq.op_type == "DequantizeLinear" and w_dq.attributes["axis"].value == 0
            assert w_dq.inputs[0].const_value.dtype == ir.DataType.INT8
            q = w_dq.inputs[0].const_value.numpy()
            assert q.min() >= -127 and np.all(w_dq.inputs[2].const_value.numpy() == 0)
            b_dq = node.inputs[2].producer()
            assert b_dq.inputs[0].const_value.dtype == ir.DataType.INT32
    # Relu is fused after conv1: its input comes straight from the Conv, no QDQ between them.
    relu = next(n for n in qdq.graph if n.op_type == "Relu")
    assert _producer_op(relu.inputs[0]) == "Conv"
    assert details["fused_activations"] == 1
    # The graph output keeps its name, now produced by a DequantizeLinear.
    assert qdq.graph.outputs[0].name == "y" and _producer_op(qdq.graph.outputs[0]) == "DequantizeLinear"
    assert ops["QuantizeLinear"] == details["quantized_tensors"]


def test_bias_scale_is_input_scale_times_weight_scale():
    qdq, details, _ = _quantize(_cnn())
    conv = next(n for n in qdq.graph if n.op_type == "Conv")
    s_x = conv.inputs[0].producer().inputs[1].const_value.numpy()
    s_w = conv.inputs[1].producer().inputs[1].const_value.numpy()
    s_b = conv.inputs[2].producer().inputs[1].const_value.numpy()
    np.testing.assert_allclose(s_b, s_x * s_w, rtol=1e-6)


def test_pooling_and_flatten_share_their_input_parameters():
    _, details, _ = _quantize(_cnn())
    acts = details["activations"]
    # The depthwise conv output feeds MaxPool: both tensors carry one set of parameters.
    assert acts["c2"] == acts["p"]
    assert acts["g"] == acts["f"]


def test_qdq_output_tracks_float_within_quantization_noise():
    model = _cnn()
    qdq, details, _ = _quantize(model)
    x = np.random.default_rng(9).standard_normal((1, 3, 8, 8)).astype(np.float32)
    ref, out = run_model(model, [x])[0], run_model(qdq, [x])[0]
    err = np.abs(out - ref).max()
    assert 0 < err < 0.05 * np.abs(ref).max()


def test_fixed_output_parameters_for_sigmoid_and_softmax():
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
             helper.make_node("Sigmoid", ["h"], ["s"]),
             helper.make_node("Softmax", ["s"], ["y"], axis=-1)]
    model = build_model(nodes, {"x": [1, 6]}, {"y": [1, 4]},
                        {"w": random_weight(4, 6), "b": random_weight(4, seed=1)})
    ranges = {"x": (-3.0, 3.0), "h": (-5.0, 5.0), "s": (0.0, 1.0), "y": (0.0, 1.0)}
    q = QuantizeQDQ(QuantizeOptions(ranges=ranges))
    q(model)
    for name in ("s", "y"):
        assert q.details["activations"][name] == {"scale": pytest.approx(1 / 256), "zero_point": -128}
    assert q.details["activations"]["h"]["scale"] == pytest.approx(float(activation_qparams(-5, 5).scale))


def test_concat_inputs_and_output_share_the_union_range():
    nodes = [helper.make_node("Relu", ["a"], ["ra"]), helper.make_node("Relu", ["b"], ["rb"]),
             helper.make_node("Concat", ["ra", "rb"], ["y"], axis=1)]
    model = build_model(nodes, {"a": [1, 2], "b": [1, 3]}, {"y": [1, 5]})
    ranges = {"a": (-1.0, 1.0), "b": (-4.0, 4.0), "ra": (0.0, 1.0), "rb": (0.0, 4.0), "y": (0.0, 4.0)}
    q = QuantizeQDQ(QuantizeOptions(ranges=ranges))
    q(model)
    acts = q.details["activations"]
    assert acts["ra"] == acts["rb"] == acts["y"]
    assert acts["y"]["scale"] == pytest.approx(float(activation_qparams(0.0, 4.0).scale))


def test_ops_without_int8_kernel_stay_float_and_are_listed():
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
             helper.make_node("LayerNormalization", ["h", "g", "beta"], ["y"], axis=-1, name="ln")]
    model = build_model(nodes, {"x": [2, 6]}, {"y": [2, 4]},
                        {"w": random_weight(4, 6), "b": random_weight(4, seed=1),
                         "g": np.ones(4, np.float32), "beta": np.zeros(4, np.float32)})
    q = QuantizeQDQ(QuantizeOptions(ranges={"x": (-3, 3), "h": (-6, 6), "y": (-2, 2)}))
    out = q(model).model
    assert {"node": "ln", "op": "LayerNormalization", "why": "no int8 kernel"} in q.details["float_nodes"]
    ln = next(n for n in out.graph if n.op_type == "LayerNormalization")
    assert _producer_op(ln.inputs[0]) == "DequantizeLinear"  # dequantized in, float out
    assert "y" not in q.details["activations"]


def test_missing_range_is_an_error_naming_the_tensor():
    model = _cnn()
    with pytest.raises(PassError, match="no calibrated range"):
        QuantizeQDQ(QuantizeOptions(ranges={"x": (-1, 1)}))(model)


def test_bias_correction_removes_the_mean_error_of_rounded_weights():
    # Inputs with a large mean: rounding errors of the weights then shift every output.
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
    w = random_weight(16, 64, seed=3) * 0.05
    model = build_model(nodes, {"x": [1, 64]}, {"y": [1, 16]}, {"w": w, "b": np.zeros(16, np.float32)})
    xs = (np.random.default_rng(0).standard_normal((64, 64)) * 0.1 + 3.0).astype(np.float32)
    data = load_calibration(xs, model)
    stats = collect_statistics(model, data)

    def mean_error(correct: bool) -> float:
        q = QuantizeQDQ(QuantizeOptions(ranges=stats.ranges, channel_means=stats.channel_means if correct else None))
        qm = q(ir.from_proto(ir.to_proto(model))).model
        errs = [run_model(qm, s)[0] - run_model(model, s)[0] for s in data.samples]
        return float(np.abs(np.mean(errs, axis=0)).mean())

    assert mean_error(True) < 0.5 * mean_error(False)
