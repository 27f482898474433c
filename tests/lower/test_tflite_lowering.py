"""The TFLite lowering as a whole: errors, layout at the graph edges, atomic files, report."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgec.errors import UnsupportedOpsError
from edgec.ir import from_proto
from edgec.lower.tflite import lower_tflite
from edgec.lower.tflite.builder import TFLiteGraph
from edgec.targets import get_target
from tflite_cases import Case, ints, lower_and_compare, node, rand, read_ops

TARGET = get_target("x86_64-fp32")


def _conv_chain_case() -> Case:
    """A small CNN: conv, depthwise, residual add, pooling, concat, global pool, classifier."""
    return Case(
        [
            node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
            node("Relu", ["c1"], ["r1"]),
            node("Conv", ["r1", "dw"], ["d1"], group=8, pads=[1, 1, 1, 1]),
            node("Clip", ["d1", "lo", "hi"], ["r2"]),
            node("Conv", ["r2", "w2"], ["c2"]),
            node("Add", ["c2", "r1"], ["a1"]),
            node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
            node("Conv", ["p1", "w3"], ["c3"], pads=[1, 1, 1, 1]),
            node("Concat", ["p1", "c3"], ["cat"], axis=1),
            node("Sigmoid", ["cat"], ["s"]),
            node("Mul", ["cat", "s"], ["silu"]),
            node("GlobalAveragePool", ["silu"], ["g"]),
            node("Flatten", ["g"], ["f"]),
            node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1),
        ],
        {"x": (1, 3, 16, 16)},
        consts={
            "w1": rand(8, 3, 3, 3), "b1": rand(8), "dw": rand(8, 1, 3, 3), "w2": rand(8, 8, 1, 1, scale=0.3),
            "w3": rand(4, 8, 3, 3, scale=0.3), "fc": rand(5, 12), "fcb": rand(5),
            "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32),
        },
    )


def test_no_transpose_between_convolutions(tmp_path):
    path = tmp_path / "cnn.tflite"
    result = lower_and_compare(_conv_chain_case().model(), path)

    assert result.rel_error <= 1e-5
    transposes = [op for op in read_ops(path) if op[0] == "TRANSPOSE"]
    # Only the NCHW graph input needs one; the classifier output is 2-D and the flatten after
    # global pooling is a RESHAPE of bytes already in order.
    assert len(transposes) == 1
    assert transposes[0][1] == ["x"]
    assert result.report["layout_transposes"] == 1
    assert result.delegation["fraction"] == 1.0


def test_graph_edges_get_one_transpose_each(tmp_path):
    case = Case([node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), node("Relu", ["c"], ["y"]),
                 node("Conv", ["y", "w"], ["y2"], pads=[1, 1, 1, 1])],
                {"x": (1, 4, 6, 6)}, outputs=("y", "y2"), consts={"w": rand(4, 4, 3, 3)})
    path = tmp_path / "edges.tflite"
    result = lower_and_compare(case.model(), path)

    assert result.rel_error <= 1e-5
    ops = read_ops(path)
    transposes = [(ins, outs) for op, ins, outs in ops if op == "TRANSPOSE"]
    assert len(transposes) == 3  # into x, out of y, out of y2
    assert sorted(outs[0] for _, outs in transposes if "nhwc" not in outs[0]) == ["y", "y2"]
    # The second conv reads the NHWC tensor, not the NCHW copy made for the output.
    second_conv = [ins for op, ins, _ in ops if op == "CONV_2D"][1]
    assert second_conv == ["y/nhwc"]


def test_signature_keeps_onnx_names_shapes_and_order(tmp_path):
    case = Case(
        [node("Conv", ["image", "w"], ["features"], pads=[1, 1, 1, 1]),
         node("Add", ["features", "bias_map"], ["logits"]),
         node("Identity", ["image"], ["passthrough"])],
        {"image": (1, 2, 5, 5), "bias_map": (1, 3, 5, 5)},
        outputs=("logits", "passthrough", "features"),
        consts={"w": rand(3, 2, 3, 3)},
    )
    model = case.model()
    result = lower_and_compare(model, tmp_path / "sig.tflite")

    runtime = result.runtime
    assert [(s.name, s.shape) for s in runtime.inputs] == [("image", (1, 2, 5, 5)), ("bias_map", (1, 3, 5, 5))]
    assert [(s.name, s.shape) for s in runtime.outputs] == [
        ("logits", (1, 3, 5, 5)), ("passthrough", (1, 2, 5, 5)), ("features", (1, 3, 5, 5))]
    assert result.rel_error <= 1e-5
    assert result.report["inputs"] == [{"name": "image", "shape": [1, 2, 5, 5]},
                                       {"name": "bias_map", "shape": [1, 3, 5, 5]}]


def test_report_matches_the_file(tmp_path):
    path = tmp_path / "cnn.tflite"
    report = lower_tflite(_conv_chain_case().model(), TARGET, path)

    ops = read_ops(path)
    assert report["ops"] == dict(Counter(op for op, _, _ in ops))
    assert report["num_ops"] == len(ops)
    assert report["size_bytes"] == path.stat().st_size
    assert report["layout_transposes"] == report["ops"]["TRANSPOSE"]
    assert report["path"] == str(path)


def _unsupported_model():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="ok_relu"),
        helper.make_node("Einsum", ["r", "r"], ["e"], name="mix", equation="bchw,bchw->bchw"),
        helper.make_node("FancyNorm", ["e"], ["f"], name="vendor_norm", domain="com.example"),
        # A fractional output length under align_corners (onnxruntime and ONNX disagree there).
        helper.make_node("Resize", ["f", "", "scales"], ["y"], name="upsample", mode="cubic",
                         coordinate_transformation_mode="align_corners"),
    ]
    graph = helper.make_graph(
        nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
        initializer=[onnx.numpy_helper.from_array(np.array([1, 1, 2.1, 2.1], np.float32), "scales")],
        value_info=[helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4]) for n in ("r", "e", "f")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.example", 1)])
    return from_proto(proto)


def test_every_unsupported_node_is_reported_at_once(tmp_path):
    path = tmp_path / "bad.tflite"
    with pytest.raises(UnsupportedOpsError) as info:
        lower_tflite(_unsupported_model(), TARGET, path)

    error = info.value
    assert [(name, op) for name, op, _ in error.nodes] == [
        ("mix", "Einsum"), ("vendor_norm", "FancyNorm"), ("upsample", "Resize")]
    message = str(error)
    assert "x86_64-fp32" in message and "tflite" in message
    assert "Einsum 'mix'" in message and "FancyNorm 'vendor_norm'" in message and "com.example" in message
    assert "align_corners with scale 2.1" in message
    assert "ok_relu" not in message
    assert not path.exists()


def test_dynamic_shapes_are_refused_with_a_hint(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="act")], "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 8, 8])],
    )
    model = from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    with pytest.raises(UnsupportedOpsError, match=r"Relu 'act'.*dynamic.*--input-shape") as info:
        lower_tflite(model, TARGET, tmp_path / "dyn.tflite")
    assert ("x", "graph input") in [(name, kind) for name, kind, _ in info.value.nodes]


def test_a_failed_lowering_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "out.tflite"
    with pytest.raises(UnsupportedOpsError):
        lower_tflite(_unsupported_model(), TARGET, path)
    assert list(tmp_path.iterdir()) == []

    def broken_serialize(self):
        raise RuntimeError("disk full while packing")

    path.write_bytes(b"previous artifact")
    monkeypatch.setattr(TFLiteGraph, "serialize", broken_serialize)
    with pytest.raises(RuntimeError, match="disk full"):
        lower_tflite(_conv_chain_case().model(), TARGET, path)
    # The earlier artifact is untouched and no temporary file is left beside it.
    assert path.read_bytes() == b"previous artifact"
    assert [p.name for p in tmp_path.iterdir()] == ["out.tflite"]


def test_constant_operands_are_permuted_at_compile_time(tmp_path):
    # A per-channel scale after a conv must not cost a TRANSPOSE: it is stored NHWC.
    case = Case([node("Mul", ["x", "scale"], ["m"]), node("Add", ["m", "shift"])], {"x": (1, 4, 5, 6)},
                consts={"scale": rand(4, 1, 1), "shift": rand(1, 4, 5, 1)}, nchw_prelude=True)
    path = tmp_path / "affine.tflite"
    result = lower_and_compare(case.model(), path)

    assert result.rel_error <= 1e-5
    assert result.report["ops"]["TRANSPOSE"] == 2  # graph input and output only


def test_reshape_that_splits_a_layout_run_transposes_first(tmp_path):
    # (N, C, H, W) -> (N, C*H, W) splits NHWC's (H, W, C) order: a TRANSPOSE is required.
    case = Case([node("Reshape", ["x", "shape"])], {"x": (1, 4, 3, 5)}, consts={"shape": ints(1, 12, 5)},
                nchw_prelude=True)
    result = lower_and_compare(case.model(), tmp_path / "split_runs.tflite")
    assert result.rel_error <= 1e-5
    assert result.report["layout_transposes"] == 2  # input edge, and before the reshape


def test_values_read_elsewhere_are_not_fused(tmp_path):
    # The conv output and the MatMul output are graph outputs too: the Relu and the bias
    # Add must stay separate ops, or those outputs would be computed wrong.
    case = Case(
        [node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), node("Relu", ["c"], ["r"]),
         node("Flatten", ["r"], ["f"]), node("MatMul", ["f", "m"], ["mm"]), node("Add", ["mm", "b"], ["y"])],
        {"x": (1, 2, 3, 3)}, outputs=("c", "r", "mm", "y"), consts={"w": rand(2, 2, 3, 3), "m": rand(18, 4), "b": rand(4)},
    )
    result = lower_and_compare(case.model(), tmp_path / "unfused.tflite")
    assert result.rel_error <= 1e-5
    assert result.report["ops"]["RELU"] == 1 and result.report["ops"]["ADD"] == 1


def test_constant_buffers_are_16_byte_aligned(tmp_path):
    from ai_edge_litert import schema_py_generated as schema

    path = tmp_path / "cnn.tflite"
    lower_tflite(_conv_chain_case().model(), TARGET, path)
    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    starts = []
    for i in range(model.BuffersLength()):
        table = model.Buffers(i)._tab
        field = table.Offset(4)  # Buffer.data
        if field:
            starts.append(table.Vector(field))
    assert len(starts) > 5
    assert all(start % 16 == 0 for start in starts)


def test_scalar_op_with_a_constant_scalar_keeps_rank_0(tmp_path):
    """A loss-style tail (sum to a scalar, divide by a constant) gives a rank-0 output, as in ONNX."""
    from edgec.runtimes.litert import LiteRTRuntime

    case = Case([node("ReduceSum", ["x"], ["s"], keepdims=0), node("Div", ["s", "n"], ["y"])], {"x": (3, 2)},
                consts={"n": np.array(5.0, np.float32)})
    result = lower_and_compare(case.model(), tmp_path / "scalar.tflite")
    assert result.rel_error <= 1e-6
    runtime = LiteRTRuntime(tmp_path / "scalar.tflite")
    assert runtime.outputs[0].shape == ()
    assert runtime.run([np.ones((3, 2), np.float32)])[0].shape == ()  # not [1]: [] op [1] broadcasts to [1]
