"""The ops text transformers need, lowered to TFLite and checked against onnxruntime.

Token ids and masks are int64/bool tensors computed at run time: embedding lookups with
run-time indices, mask arithmetic (Cast, Equal, Not, And, Where, IsNaN), CumSum position ids,
Expand, and Erf outside the GELU pattern. Inputs include the awkward values (NaN, infinity,
negative indices, zero) that the ONNX semantics define.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.ir import from_proto
from edgec.lower.tflite import lower_tflite, unsupported_nodes
from edgec.passes.shape_inference import ShapeInference
from edgec.runtimes.litert import LiteRTRuntime
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.targets import get_target

F, I64, I32, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL


def _model(nodes, inputs, outputs, consts=None):
    graph = helper.make_graph(
        nodes, "text",
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in inputs.items()],
        [helper.make_tensor_value_info(n, t, s) for n, (t, s) in outputs.items()],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in (consts or {}).items()])
    model = from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    return ShapeInference()(model).model


def _compare(model, inputs, tmp_path, xnnpack=True):
    path = tmp_path / "m.tflite"
    report = lower_tflite(model, get_target("x86_64-fp32"), path)
    expected = OnnxRuntime.from_ir(model, optimize=False).run(inputs)
    actual = LiteRTRuntime(path, xnnpack=xnnpack).run(inputs)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        if np.issubdtype(e.dtype, np.floating):
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6 * max(1.0, float(np.nanmax(np.abs(e)))))
        else:
            np.testing.assert_array_equal(a, e)
    return report


@pytest.mark.parametrize("xnnpack", [True, False])
def test_embedding_lookup_with_int64_token_ids_and_negative_indices(tmp_path, xnnpack):
    table = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    model = _model([helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)],
                   {"ids": (I64, [2, 5])}, {"y": (F, [2, 5, 16])}, {"table": table})
    ids = np.array([[0, 7, 49, -1, -50], [3, 3, 1, 2, 48]], np.int64)
    report = _compare(model, [ids], tmp_path, xnnpack)
    assert report["ops"]["GATHER"] == 1 and report["inputs"][0]["name"] == "ids"


def test_gather_of_activations_with_run_time_indices_on_an_inner_axis(tmp_path):
    model = _model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Gather", ["r", "i"], ["y"], axis=1)],
                   {"x": (F, [2, 6, 3]), "i": (I32, [4])}, {"y": (F, [2, 4, 3])})
    x = np.random.default_rng(1).standard_normal((2, 6, 3)).astype(np.float32)
    _compare(model, [x, np.array([5, 0, -2, 1], np.int32)], tmp_path)


@pytest.mark.parametrize("xnnpack", [True, False])
def test_gather_elements_of_token_type_ids_by_run_time_position_ids(tmp_path, xnnpack):
    # RoBERTa: torch.gather(token_type_ids buffer, 1, position_ids), the positions computed from
    # the input ids at run time; here they include a negative index (ONNX: from the end).
    buffer = np.arange(2 * 10, dtype=np.int64).reshape(2, 10)
    model = _model([helper.make_node("GatherElements", ["buffer", "pos"], ["y"], axis=1)],
                   {"pos": (I64, [2, 6])}, {"y": (I64, [2, 6])}, {"buffer": buffer})
    pos = np.array([[2, 3, 4, 5, 1, 1], [9, 0, -1, 7, 7, 3]], np.int64)
    report = _compare(model, [pos], tmp_path, xnnpack)
    assert report["ops"]["GATHER_ND"] == 1


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements_of_float_activations_on_each_axis(tmp_path, axis):
    x = np.random.default_rng(2).standard_normal((3, 4, 5)).astype(np.float32)
    index_shape = [3, 4, 5]
    index_shape[axis] = 2  # fewer indices than the axis holds along the gathered axis
    idx = np.random.default_rng(3).integers(-x.shape[axis], x.shape[axis], index_shape).astype(np.int32)
    model = _model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("GatherElements", ["r", "i"], ["y"],
                                                                             axis=axis)],
                   {"x": (F, [3, 4, 5]), "i": (I32, index_shape)}, {"y": (F, index_shape)})
    _compare(model, [x, idx], tmp_path)


def test_gather_elements_with_constant_indices(tmp_path):
    x = np.random.default_rng(4).standard_normal((4, 6)).astype(np.float32)
    idx = np.array([[5, 0, -1], [1, 1, 2], [0, 0, 0], [-6, 3, 4]], np.int64)
    model = _model([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)],
                   {"x": (F, [4, 6])}, {"y": (F, [4, 3])}, {"i": idx})
    _compare(model, [x], tmp_path)


def test_transformers_padding_mask_arithmetic(tmp_path):
    # attention_mask (int64) -> bool, And with a constant pattern, Where(mask, 0, min),
    # scores + mask, softmax, then the NaN guard Where(IsNaN(p), 0, p).
    seq = 6
    causal = np.tril(np.ones((1, 1, seq, seq), bool))
    nodes = [
        helper.make_node("Cast", ["mask"], ["mask_b"], to=B),
        helper.make_node("Unsqueeze", ["mask_b", "axes"], ["mask4"]),
        helper.make_node("And", ["causal", "mask4"], ["allowed"]),
        helper.make_node("Where", ["allowed", "zero", "lowest"], ["bias"]),
        helper.make_node("Add", ["scores", "bias"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
        helper.make_node("IsNaN", ["p"], ["nan"]),
        helper.make_node("Where", ["nan", "zero", "p"], ["y"]),
    ]
    consts = {"causal": causal, "axes": np.array([1, 2], np.int64), "zero": np.float32(0),
              "lowest": np.float32(np.finfo(np.float32).min)}
    model = _model(nodes, {"mask": (I64, [1, seq]), "scores": (F, [1, 2, seq, seq])}, {"y": (F, [1, 2, seq, seq])},
                   consts)
    mask = np.array([[1, 1, 1, 1, 0, 0]], np.int64)
    scores = np.random.default_rng(2).standard_normal((1, 2, seq, seq)).astype(np.float32)
    report = _compare(model, [mask, scores], tmp_path)
    assert {"CAST", "LOGICAL_AND", "SELECT_V2", "NOT_EQUAL", "SOFTMAX"} <= set(report["ops"])


def test_isnan_isinf_equal_not_on_special_values(tmp_path):
    nodes = [helper.make_node("IsNaN", ["x"], ["nan"]),
             helper.make_node("IsInf", ["x"], ["inf"]),
             helper.make_node("IsInf", ["x"], ["pos"], detect_negative=0),
             helper.make_node("Equal", ["x", "zero"], ["eq"]),
             helper.make_node("Not", ["eq"], ["ne"]),
             helper.make_node("Less", ["x", "zero"], ["lt"]),
             helper.make_node("Xor", ["lt", "nan"], ["xor"])]
    outs = {n: (B, [6]) for n in ("nan", "inf", "pos", "eq", "ne", "lt", "xor")}
    model = _model(nodes, {"x": (F, [6])}, outs, {"zero": np.float32(0)})
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -1.5, 2.0], np.float32)
    _compare(model, [x], tmp_path)


@pytest.mark.parametrize("src,dst", [(I64, F), (I64, I32), (I64, B), (F, I64), (B, F), (F, B)])
def test_cast(tmp_path, src, dst):
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=dst)], {"x": (src, [2, 4])}, {"y": (dst, [2, 4])})
    values = np.array([[0, 1, -2, 7], [3, -1, 0, 2]])
    if src == F:
        x = (values * 1.7).astype(np.float32)  # truncation toward zero, like ONNX
    elif src == B:
        x = values.astype(bool)
    else:
        x = values.astype(np.int64)
    _compare(model, [x], tmp_path)


def test_position_ids_from_a_padding_mask(tmp_path):
    # RoBERTa: position = cumsum(ids != pad) * (ids != pad) + pad, all int64.
    pad = np.int64(1)
    nodes = [helper.make_node("Equal", ["ids", "pad"], ["is_pad"]),
             helper.make_node("Not", ["is_pad"], ["keep"]),
             helper.make_node("Cast", ["keep"], ["keep_i"], to=I64),
             helper.make_node("CumSum", ["keep_i", "axis"], ["count"]),
             helper.make_node("Mul", ["count", "keep_i"], ["kept"]),
             helper.make_node("Add", ["kept", "pad"], ["y"])]
    model = _model(nodes, {"ids": (I64, [2, 6])}, {"y": (I64, [2, 6])}, {"pad": pad, "axis": np.int64(1)})
    report = _compare(model, [np.array([[5, 8, 9, 1, 1, 1], [1, 4, 4, 4, 4, 2]], np.int64)], tmp_path)
    assert report["ops"]["CUMSUM"] == 1


@pytest.mark.parametrize("exclusive,reverse", [(1, 0), (0, 1)])
def test_cumsum_options(tmp_path, exclusive, reverse):
    model = _model([helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)],
                   {"x": (F, [3, 5])}, {"y": (F, [3, 5])}, {"axis": np.int64(-1)})
    _compare(model, [np.random.default_rng(3).standard_normal((3, 5)).astype(np.float32)], tmp_path)


def test_expand_a_mask(tmp_path):
    model = _model([helper.make_node("Expand", ["m", "shape"], ["y"])], {"m": (B, [1, 6])}, {"y": (B, [2, 1, 4, 6])},
                   {"shape": np.array([2, 1, 4, 6], np.int64)})
    _compare(model, [np.array([[1, 0, 1, 1, 0, 0]], bool)], tmp_path)


def test_standalone_erf_is_accurate_over_its_whole_range(tmp_path):
    model = _model([helper.make_node("Erf", ["x"], ["y"])], {"x": (F, [401])}, {"y": (F, [401])})
    x = np.linspace(-6, 6, 401).astype(np.float32)
    report = _compare(model, [x], tmp_path)
    assert set(report["ops"]) <= {"MUL", "ADD", "DIV", "MINIMUM", "MAXIMUM"}
    y = LiteRTRuntime(tmp_path / "m.tflite").run([x])[0]
    assert max(abs(float(a) - math.erf(float(b))) for a, b in zip(y, x)) < 5e-7  # a few float32 ulps


def test_float_ops_still_refuse_integer_tensors():
    model = _model([helper.make_node("Relu", ["x"], ["y"])], {"x": (I64, [4])}, {"y": (I64, [4])})
    (problem,) = unsupported_nodes(model)
    assert problem[1] == "Relu" and "int64" in problem[2] and "float32" in problem[2]
