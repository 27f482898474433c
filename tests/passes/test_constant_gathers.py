import numpy as np
import pytest
import torch
from onnx import helper

from edgec.frontends.torch_module import export_module
from edgec.passes.constant_gathers import RewriteConstantGathers, data_movement, gather
from edgec.passes.shape_inference import ShapeInference
from helpers import assert_pass_preserves_outputs, build_model, op_counts


def _gather_model(op, data_shape, indices, out_shape=None, **attrs):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node(op, ["r", "idx"], ["y"], **attrs)]
    model = build_model(nodes, {"x": data_shape}, ["y"], {"idx": np.asarray(indices, np.int64)})
    return ShapeInference()(model).model


def _rewritten(model):
    out = assert_pass_preserves_outputs(model, RewriteConstantGathers())
    ops = op_counts(out)
    assert ops["Gather"] == ops["GatherND"] == ops["GatherElements"] == 0, ops
    return ops


def test_torch_as_strided_channels_last_head_becomes_a_transpose():
    # timm's channels-last pooling heads export aten.as_strided as a Gather over the flat tensor.
    class Head(torch.nn.Module):
        def forward(self, x):
            n, c, h, w = x.shape
            return torch.relu(x).as_strided((n, h * w, c), (c * h * w, 1, h * w)).mean(1)

    model = export_module(Head(), (torch.randn(1, 8, 4, 4),), "head")
    assert op_counts(model)["Gather"] == 1
    ops = _rewritten(model)
    assert ops["Transpose"] == 1 and ops["Slice"] == 0


def test_mask_gather_nd_over_a_constant_grid_becomes_a_reshape():
    # transformers' padding mask: mask[0, j] for j < seq, laid out as (1, 1, 1, seq).
    grid = np.stack([np.zeros(8, np.int64), np.arange(8)], -1).reshape(1, 1, 1, 8, 2)
    ops = _rewritten(_gather_model("GatherND", [1, 8], grid))
    assert dict(ops) == {"Relu": 1, "Reshape": 1}


def test_strided_indices_become_one_slice():
    ops = _rewritten(_gather_model("Gather", [2, 8, 3], [1, 3, 5], axis=1))
    assert ops["Slice"] == 1 and ops["Transpose"] == 0


def test_a_scalar_index_is_a_slice_that_drops_the_axis():
    ops = _rewritten(_gather_model("Gather", [1, 6, 5], -1, axis=1))
    assert ops["Slice"] == 1


def test_gather_elements_of_a_long_constant_axis_is_folded():
    # onnx's reference GatherElements fails past 64 entries on the axis, so the folder leaves it.
    data = np.arange(100, dtype=np.float32).reshape(1, 100)
    nodes = [helper.make_node("GatherElements", ["d", "idx"], ["g"], axis=1),
             helper.make_node("Add", ["x", "g"], ["y"])]
    model = build_model(nodes, {"x": [1, 8]}, ["y"], {"d": data, "idx": np.arange(8, 16).reshape(1, 8)})
    out = assert_pass_preserves_outputs(ShapeInference()(model).model, RewriteConstantGathers())
    assert op_counts(out)["GatherElements"] == 0 and op_counts(out)["Add"] == 1


def test_a_permutation_that_is_no_grid_stays_a_gather_and_says_why():
    p = RewriteConstantGathers()
    out = assert_pass_preserves_outputs(_gather_model("Gather", [4, 3], [2, 0, 1], axis=1), p)
    assert op_counts(out)["Gather"] == 1
    assert "affine grid" in p.refusals[0].reason


@pytest.mark.parametrize("shape,op,indices,attrs", [
    ((2, 3, 4), "Gather", np.array([[0, 2], [1, 1]]), {"axis": 2}),
    ((2, 3, 4), "GatherElements", np.zeros((2, 3, 2), np.int64) + [0, 3], {"axis": 2}),
    ((2, 3, 4), "GatherND", np.array([[1, 2], [0, -1]]), {"batch_dims": 0}),
    ((2, 3, 4), "GatherND", np.array([[1], [2]]), {"batch_dims": 1}),
])
def test_numpy_gathers_match_onnxruntime(shape, op, indices, attrs):
    from helpers import run_model

    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model = _gather_model(op, list(shape), indices, **attrs)
    (expected,) = run_model(model, [x])
    np.testing.assert_array_equal(gather(op, np.maximum(x, 0), indices, **attrs), expected)


def test_data_movement_refuses_overlapping_windows():
    # Sliding windows of 3 with step 1 read elements twice: no reshape/slice gives that.
    positions = np.arange(4)[:, None] + np.arange(3)[None, :]
    assert data_movement(positions, (6,)) is None
