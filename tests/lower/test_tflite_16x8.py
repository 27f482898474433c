"""TFLite's 16x8 mode per layer: int16 activations (zero point 0), int8 weights, int64 bias.

The QDQ graph with some layers at 16 bits is lowered, loaded by LiteRT (whose builtin kernels
run 16x8; XNNPACK takes only the int8 layers) and held to the QDQ reference; a tensor between
an int8 and a 16x8 layer is requantized in both."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest
from ai_edge_litert import schema_py_generated as schema
from onnx import helper

from edgec.errors import PassError
from edgec.lower.tflite import lower_tflite
from edgec.lower.tflite.qdq import QDQFormError, read_qdq
from edgec.passes.shape_inference import ShapeInference
from edgec.quantization import quantize_model
from edgec.quantization.calibration import collect_statistics, load_calibration
from edgec.runtimes.litert import LiteRTRuntime
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.targets import get_target
from edgec.verify import sqnr_db
from helpers import build_model, random_weight

ATTENTION = frozenset({"scores", "softmax", "attend"})


def _attention_block():
    """x (1, 8, 16) -> q (with bias), k, v -> softmax(q k^T) v -> proj -> + x."""
    t, d = 8, 16
    nodes = [
        helper.make_node("MatMul", ["x", "wq"], ["q0"], name="q"),
        helper.make_node("Add", ["q0", "bq"], ["q1"], name="q_bias"),
        helper.make_node("MatMul", ["x", "wk"], ["k0"], name="k"),
        helper.make_node("Transpose", ["k0"], ["kt"], perm=[0, 2, 1], name="kT"),
        helper.make_node("MatMul", ["x", "wv"], ["v0"], name="v"),
        helper.make_node("MatMul", ["q1", "kt"], ["s"], name="scores"),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1, name="softmax"),
        helper.make_node("MatMul", ["p", "v0"], ["o"], name="attend"),
        helper.make_node("Gemm", ["o2", "wo", "bo"], ["o3"], transB=1, name="proj"),
        helper.make_node("Reshape", ["o", "flat"], ["o2"], name="flatten"),
        helper.make_node("Reshape", ["o3", "shape"], ["o4"], name="unflatten"),
        helper.make_node("Add", ["x", "o4"], ["y"], name="residual"),
    ]
    nodes = nodes[:8] + [nodes[9], nodes[8]] + nodes[10:]
    init = {"wq": random_weight(d, d, seed=1) * 0.5, "bq": random_weight(d, seed=5) * 0.1,
            "wk": random_weight(d, d, seed=2) * 0.5, "wv": random_weight(d, d, seed=3) * 0.3,
            "wo": random_weight(d, d, seed=4) * 0.3, "bo": random_weight(d, seed=6) * 0.2,
            "flat": np.array([t, d], np.int64), "shape": np.array([1, t, d], np.int64)}
    model = ShapeInference()(build_model(nodes, {"x": [1, t, d]}, {"y": [1, t, d]}, init)).model
    x = np.random.default_rng(0).standard_normal((48, 1, t, d)).astype(np.float32)
    data = load_calibration(x, model)
    return model, data, collect_statistics(model, data)


def _lower_and_compare(model, data, stats, int16_nodes, tmp_path):
    qdq, info = quantize_model(model, data, statistics=stats, int16_nodes=int16_nodes)
    path = tmp_path / "model.tflite"
    lowering = lower_tflite(qdq, get_target("x86_64-int8"), path)
    ref, qref, art = OnnxRuntime.from_ir(model), OnnxRuntime.from_ir(qdq, optimize=False), LiteRTRuntime(path)
    xs = [s[0] for s in data.samples]
    f = np.concatenate([ref.run([x])[0].ravel() for x in xs])
    q = np.concatenate([qref.run([x])[0].ravel() for x in xs])
    a = np.concatenate([art.run([x])[0].ravel() for x in xs])
    return info, lowering, path, {"qdq_vs_float": sqnr_db(q, f), "tflite_vs_qdq": sqnr_db(a, q),
                                  "max_lsb": float(np.max(np.abs(a - q)) / info["activations"]["y"]["scale"])}


def _file(path):
    fb = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = fb.subgraphs[0]
    return graph, [(names[fb.operatorCodes[op.opcodeIndex].builtinCode], op) for op in graph.operators]


def test_all_16x8_runs_in_litert_and_matches_the_qdq_reference(tmp_path):
    model, data, stats = _attention_block()
    every = frozenset(n.name for n in model.graph)
    info8, _, _, int8 = _lower_and_compare(model, data, stats, frozenset(), tmp_path / "a")
    info16, lowering, path, int16 = _lower_and_compare(model, data, stats, every, tmp_path / "b")
    # The 16-bit kernels' fixed-point softmax/requantization differ from float rounding by a
    # few int16 steps: at most 1/8 of one int8 step.
    assert int16["tflite_vs_qdq"] > 60 and int16["max_lsb"] <= 32
    assert int16["qdq_vs_float"] > int8["qdq_vs_float"] + 6  # what 16-bit activations buy
    assert lowering["quantized"]["int16_ops"] >= 8 and lowering["quantized"]["int64_bias_tensors"] == 4
    graph, ops = _file(path)
    for name, op in ops:
        if name in ("FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "ADD"):
            out = graph.tensors[op.outputs[0]]
            assert out.type == schema.TensorType.INT16 and list(out.quantization.zeroPoint) == [0], name
        if name == "FULLY_CONNECTED":
            assert graph.tensors[op.inputs[1]].type == schema.TensorType.INT8
            assert graph.tensors[op.inputs[2]].type == schema.TensorType.INT64
        if name == "SOFTMAX":  # TFLite's fixed 16-bit softmax output
            assert graph.tensors[op.outputs[0]].quantization.scale[0] == pytest.approx(1 / 32768)
    assert info16["activations"]["p"] == {"scale": pytest.approx(1 / 32768), "zero_point": 0, "bits": 16}


def test_mixed_int8_and_16x8_requantizes_between_them(tmp_path):
    model, data, stats = _attention_block()
    info, lowering, path, figs = _lower_and_compare(model, data, stats, ATTENTION, tmp_path)
    assert figs["tflite_vs_qdq"] > 40 and figs["max_lsb"] <= 2
    # q, k (through kT) and v are int8 tensors read by 16x8 layers; attend's int16 output is read
    # by the int8 flatten -> proj.
    assert info["requantized_reads"] == 4
    assert {k for k, v in info["activations"].items() if v.get("bits") == 16} == {"s", "p", "o"}
    graph, ops = _file(path)
    kinds = {name: graph.tensors[op.outputs[0]].type for name, op in ops}
    assert kinds["SOFTMAX"] == schema.TensorType.INT16
    assert kinds["FULLY_CONNECTED"] == schema.TensorType.INT8  # proj stays int8


def test_bias_too_large_for_int32_at_16_bits_is_kept_exact_in_int64(tmp_path):
    """On a 16-bit input scale a bias of 3000 needs ~3e9 accumulator steps: beyond int32 (the
    widest DequantizeLinear input), not beyond TFLite's int64 bias."""
    b1 = np.zeros(32, np.float32)
    b1[0] = 3000.0
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["y"], transB=1, name="fc1")]
    model = ShapeInference()(build_model(nodes, {"x": [1, 16]}, {"y": [1, 32]},
                                         {"w1": random_weight(32, 16, seed=1) * 0.3, "b1": b1})).model
    data = load_calibration(np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32), model)
    stats = collect_statistics(model, data)
    qdq, info = quantize_model(model, data, statistics=stats, int16_nodes=frozenset({"fc1"}))
    path = tmp_path / "fc.tflite"
    lower_tflite(qdq, get_target("x86_64-int8"), path)
    graph, ops = _file(path)
    bias = graph.tensors[ops[1][1].inputs[2]] if ops[0][0] == "QUANTIZE" else graph.tensors[ops[0][1].inputs[2]]
    assert bias.type == schema.TensorType.INT64
    x = data.samples[0][0]
    want = OnnxRuntime.from_ir(model).run([x])[0]
    got = LiteRTRuntime(path).run([x])[0]
    step = info["activations"]["y"]["scale"]
    assert np.max(np.abs(got - want)) < 4 * step  # channel 0 (3000) included


def test_16x8_form_errors_name_the_node():
    model, data, stats = _attention_block()
    with pytest.raises(PassError, match="no 16x8 kernel"):
        # LeakyRelu has an int8 kernel but no 16x8 one in TFLite.
        nodes = [helper.make_node("LeakyRelu", ["x"], ["y"], name="leaky")]
        m = ShapeInference()(build_model(nodes, {"x": [1, 4]}, {"y": [1, 4]})).model
        d = load_calibration(np.ones((2, 4), np.float32), m)
        quantize_model(m, d, int16_nodes=frozenset({"leaky"}))
    qdq, _ = quantize_model(model, data, statistics=stats, int16_nodes=ATTENTION)
    zp = next(v for v in qdq.graph.initializers.values() if v.name == "p/zero_point")
    zp.const_value = ir.tensor(np.array(3, np.int16), name="p/zero_point")
    with pytest.raises(QDQFormError, match="zero point 0"):
        read_qdq(qdq)
