"""ONNX files as model zoos hold them: IR version 3, opsets 7-9, initializers listed as inputs,
unused initializers, duplicate names, stale value_info. Each compiles, and its artifacts
compute what onnxruntime computes on the original file."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec

RNG = np.random.default_rng(0)


def _f(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _zoo_era_model(opset: int) -> onnx.ModelProto:
    """Conv, BatchNormalization(spatial), Relu, Dropout(ratio), Sum of 3, Upsample, Pad (attribute
    form), GlobalAveragePool, Reshape, Add; every initializer also a graph input; one unused
    initializer; a value_info whose shape is wrong."""
    inits = {"w": _f(4, 3, 3, 3), "b": _f(4), "scale": np.abs(_f(4)) + 0.5, "bias": _f(4), "mean": _f(4),
             "var": np.abs(_f(4)) + 0.5, "unused": _f(10), "shape": np.array([1, -1], np.int64), "offset": _f(1, 4)}
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["bn"], epsilon=1e-5,
                         name="bn", **({"spatial": 1} if opset < 9 else {})),
        helper.make_node("Relu", ["bn"], ["r"], name="relu"),
        helper.make_node("Dropout", ["r"], ["d"], ratio=0.3, name="drop"),
        helper.make_node("Sum", ["d", "r", "c"], ["s"], name="sum3"),
    ]
    if opset < 9:
        nodes.append(helper.make_node("Upsample", ["s"], ["u"], scales=[1.0, 1.0, 2.0, 2.0], mode="nearest",
                                      name="up"))
    else:
        inits["up_scales"] = np.array([1, 1, 2, 2], np.float32)
        nodes.append(helper.make_node("Upsample", ["s", "up_scales"], ["u"], mode="nearest", name="up"))
    nodes += [
        helper.make_node("Pad", ["u"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1], mode="constant", value=0.5, name="pad"),
        helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
        helper.make_node("Reshape", ["g", "shape"], ["flat"], name="flat"),
        helper.make_node("Add", ["flat", "offset"], ["y"], name="offset"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])]
    inputs += [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
               for k, v in inits.items()]
    graph = helper.make_graph(nodes, "zoo_era", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()],
                              value_info=[helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4, 7, 7])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=3)


def _onnxruntime(proto: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _assert_close(got, expected):
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-4 * np.max(np.abs(expected))


@pytest.mark.parametrize("opset", [7, 8, 9])
def test_zoo_era_file_compiles_and_matches_onnxruntime_on_the_original(opset, tmp_path):
    proto = _zoo_era_model(opset)
    path = tmp_path / f"zoo{opset}.onnx"
    onnx.save(proto, path)
    art = edgec.compile(path, target="x86_64-fp32", out_dir=tmp_path / "out")
    notes = " | ".join(art.report["source"]["notes"])
    assert f"{9 if opset < 9 else 10} initializer(s) also listed as graph inputs" in notes
    assert "compiled as constants" in notes
    assert "unused initializer" in notes and "value_info" in notes and f"from opset {opset}" in notes
    assert [i["name"] for i in art.report["inputs"]] == ["x"]

    x = _f(1, 3, 8, 8)
    (expected,) = _onnxruntime(proto, {"x": x})
    for fmt in ("tflite", "tvm"):
        (got,) = art.run(x, fmt=fmt)
        _assert_close(got, expected)


def test_an_initializer_backed_input_the_user_names_stays_an_input(tmp_path):
    proto = _zoo_era_model(9)
    path = tmp_path / "zoo.onnx"
    onnx.save(proto, path)
    art = edgec.compile(path, target="x86_64-fp32", out_dir=tmp_path / "out", formats=["tflite"],
                        input_shapes={"x": (1, 3, 8, 8), "offset": (1, 4)})
    assert [i["name"] for i in art.report["inputs"]] == ["x", "offset"]
    assert any("'offset' kept as inputs" in n for n in art.report["source"]["notes"])
    x, offset = _f(1, 3, 8, 8), _f(1, 4)
    # onnxruntime lets a caller override an initializer-backed input from IR version 4 on.
    proto.ir_version = 4
    (expected,) = _onnxruntime(proto, {"x": x, "offset": offset})
    (got,) = art.run(x, offset)
    _assert_close(got, expected)


def test_duplicate_node_names_and_entries_do_not_stop_the_compile(tmp_path):
    w = _f(4, 4)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"], name="layer"),
             helper.make_node("Relu", ["a"], ["r"], name="layer"),
             helper.make_node("Sum", ["r", "a", "x", "x"], ["y"], name="layer")]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    graph = helper.make_graph(nodes, "dups", [x_info, x_info], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(w, "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "dups.onnx"
    path.write_bytes(proto.SerializeToString())  # onnx.save would check it
    art = edgec.compile(path, target="x86_64-fp32", out_dir=tmp_path / "out", formats=["tflite"])
    notes = " | ".join(art.report["source"]["notes"])
    assert "duplicate graph input" in notes and "duplicate initializer" in notes and "duplicate node names" in notes
    x = _f(2, 4)
    np.testing.assert_allclose(art.run(x)[0], np.maximum(x @ w, 0) + x @ w + 2 * x, rtol=1e-5, atol=1e-5)
