"""Where TVM's ONNX converters differ from ONNX, edgec rewrites or refuses (lower/tvm/frontend_fixes.py).

Each rewritten case is compiled and compared with onnxruntime; each refused one must name
its node and say why, with no artifact written.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from edgec.errors import UnsupportedOpsError
from edgec.lower.tvm import lower_tvm
from edgec.targets import get_target
from test_tvm_lowering import assert_matches_onnxruntime, onnx_model, weights

N = helper.make_node
X = {"x": (1, 3, 5, 6)}


def _sizes(*values):
    return np.array(values, np.int64)


REWRITTEN = {
    # TVM's resize2d scales by out/in; ONNX by the given 0.6 (output 3 of 5).
    "resize_linear_fractional_scale": ([N("Resize", ["x", "", "scales"], ["y"], mode="linear")], X,
                                       {"scales": np.array([1, 1, 0.6, 0.7], np.float32)}),
    "resize_cubic_antialias": ([N("Resize", ["x", "", "", "sizes"], ["y"], mode="cubic", antialias=1)], X,
                               {"sizes": _sizes(1, 3, 3, 4)}),
    "resize_half_pixel_symmetric": ([N("Resize", ["x", "", "scales"], ["y"], mode="linear",
                                       coordinate_transformation_mode="half_pixel_symmetric")], X,
                                    {"scales": np.array([1, 1, 1.5, 2.2], np.float32)}),
    "resize_nearest_axes": ([N("Resize", ["x", "", "", "sizes"], ["y"], axes=[3, 2])], X, {"sizes": _sizes(9, 7)}),
    "resize_tf_crop_extrapolated": ([N("Resize", ["x", "roi", "", "sizes"], ["y"], mode="linear",
                                       coordinate_transformation_mode="tf_crop_and_resize",
                                       extrapolation_value=1.5)], X,
                                    {"roi": np.array([0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], np.float32),
                                     "sizes": _sizes(1, 3, 4, 4)}),
    # 5 -> 8 rows: TVM's nearest rounding differs from ONNX's round_prefer_floor off whole pixels.
    "resize_nearest_uneven": ([N("Resize", ["x", "", "", "sizes"], ["y"])], X, {"sizes": _sizes(1, 3, 8, 9)}),
    "conv_transpose_output_shape": ([N("ConvTranspose", ["x", "w"], ["y"], strides=[3, 2], output_shape=[16, 13])],
                                    X, {"w": weights(3, 2, 3, 3)}),
}


@pytest.mark.parametrize("name", sorted(REWRITTEN))
def test_rewritten_node_matches_onnxruntime(name, tmp_path):
    nodes, inputs, consts = REWRITTEN[name]
    assert_matches_onnxruntime(onnx_model(nodes, inputs, consts), tmp_path)


def test_layer_norm_statistics_match_onnxruntime(tmp_path):
    # TVM's converter returns the mean / inverse std with the wrong shape; decomposed instead.
    nodes = [N("LayerNormalization", ["x", "g", "b"], ["y", "mean", "inv_std"], axis=1, epsilon=1e-3)]
    model = onnx_model(nodes, {"x": (2, 3, 4)}, {"g": weights(3, 4), "b": weights(3, 4)}, ("y", "mean", "inv_std"))
    assert_matches_onnxruntime(model, tmp_path)


REFUSED = {
    "isinf_positive_only": ([N("IsInf", ["x"], ["y"], detect_negative=0)], {"x": (2, 6)}, {}, ("y",),
                            "detect_negative/detect_positive"),
    "dropout_training": (
        [N("Dropout", ["x", "r", "t"], ["y"])], {"x": (2, 6)},
        {"r": np.array(0.5, np.float32), "t": np.array(True)}, ("y",), "training mode"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_wrong_converter_is_refused_by_name(name, tmp_path):
    nodes, inputs, consts, outputs, reason = REFUSED[name]
    path = tmp_path / "m.so"
    with pytest.raises(UnsupportedOpsError, match=reason) as info:
        lower_tvm(onnx_model(nodes, inputs, consts, outputs), get_target("x86_64-fp32"), path)
    assert info.value.nodes[0][1] == nodes[0].op_type
    assert not path.exists()


def test_gather_with_run_time_ids_wraps_them(tmp_path):
    """Embedding lookup with int64 ids: negative ids mean what ONNX says; an id past the table
    reads a row of it (wrapped), never memory outside it."""
    import onnx
    from onnx import TensorProto, numpy_helper

    from edgec.ir import OPSET, from_proto
    from edgec.runtimes.onnxrt import OnnxRuntime
    from edgec.runtimes.tvmrt import TVMRuntime

    table = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    graph = helper.make_graph([N("Gather", ["table", "ids"], ["y"], axis=0)], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])],
                              [numpy_helper.from_array(table, "table")])
    model = from_proto(onnx.shape_inference.infer_shapes(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)])))
    path = tmp_path / "gather.so"
    lower_tvm(model, get_target("x86_64-fp32"), path)
    runtime = TVMRuntime(path)
    ids = np.array([[0, 9, -1], [-10, 3, 5]], np.int64)
    (got,) = runtime.run([ids])
    np.testing.assert_array_equal(got, OnnxRuntime.from_ir(model, optimize=False).run([ids])[0])
    (far,) = runtime.run([np.array([[10, 25, -11], [1000003, 2, 3]], np.int64)])
    np.testing.assert_array_equal(far, table[np.array([[0, 5, 9], [3, 2, 3]])])
