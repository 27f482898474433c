import numpy as np
from onnx import helper

from edgec.passes.shape_inference import ShapeInference
from edgec.passes.trivial_reductions import RemoveTrivialReductions
from helpers import assert_pass_preserves_outputs, build_model, op_counts


def _model(h: int):
    axes = np.array([2, 3], np.int64)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("ReduceMean", ["r", "axes"], ["m"], keepdims=1),
             helper.make_node("GlobalAveragePool", ["m"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"])]
    return ShapeInference()(build_model(nodes, {"x": [1, 8, h, h]}, ["y"], {"axes": axes})).model


def test_reductions_over_size_one_dims_become_reshapes():
    out = assert_pass_preserves_outputs(_model(1), RemoveTrivialReductions())
    ops = op_counts(out)
    assert ops["ReduceMean"] == 0 and ops["GlobalAveragePool"] == 0 and ops["Reshape"] == 2
    assert out.graph.outputs[0].name == "y"


def test_real_reductions_are_kept():
    out = assert_pass_preserves_outputs(_model(4), RemoveTrivialReductions())
    ops = op_counts(out)
    # The mean over 4x4 stays; the global pool after it then sees 1x1 and becomes a reshape.
    assert ops["ReduceMean"] == 1 and ops["GlobalAveragePool"] == 0


def test_empty_axes_reduce_every_axis_and_are_kept():
    # ONNX: an empty axes list means "all axes" (unless noop_with_empty_axes); over a 3x2x2
    # tensor that is a real reduction, not a reshape.
    nodes = [helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=1)]
    model = ShapeInference()(build_model(nodes, {"x": [3, 2, 2]}, ["y"], {"axes": np.array([], np.int64)})).model
    out = assert_pass_preserves_outputs(model, RemoveTrivialReductions())
    assert op_counts(out)["ReduceMean"] == 1
