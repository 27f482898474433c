import numpy as np
import pytest
from onnx import helper

from edgec.errors import EdgecError
from edgec.ir import const_array
from edgec.passes.prune import MagnitudePrune, magnitude_mask, parse_block
from helpers import build_model, op_counts, random_weight, run_model


def _blocks_zero(matrix: np.ndarray, block) -> np.ndarray:
    """Per block: all zero (True), all nonzero (False); fails on a partly zeroed block."""
    bh, bw = block
    tiles = (matrix == 0).reshape(matrix.shape[0] // bh, bh, matrix.shape[1] // bw, bw)
    all_zero, any_zero = tiles.all(axis=(1, 3)), tiles.any(axis=(1, 3))
    assert np.array_equal(all_zero, any_zero), "a block is only partly pruned"
    return all_zero


@pytest.mark.parametrize("block", [(1, 1), (2, 1), (4, 1)])
@pytest.mark.parametrize("sparsity", [0.5, 0.7, 0.9, 0.95])
def test_mask_zeroes_exactly_the_requested_blocks_with_the_smallest_norms(block, sparsity):
    w = random_weight(64, 40, seed=3)
    pruned = np.where(magnitude_mask(w, sparsity, block), w, 0)
    zero = _blocks_zero(pruned, block)
    assert zero.sum() == round(sparsity * zero.size)
    norms = np.abs(w).reshape(64 // block[0], block[0], 40 // block[1], block[1]).sum(axis=(1, 3))
    assert norms[zero].max() <= norms[~zero].min()


def _net(out_1x1: int = 16, stem_pads=(1, 1, 1, 1)):
    """stem 3x3 (reads the input) -> depthwise 3x3 -> 1x1 conv -> GAP -> Flatten -> Gemm."""
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], strides=[2, 2], pads=list(stem_pads), name="stem"),
        helper.make_node("Conv", ["c0", "wd"], ["c1"], group=8, pads=[1, 1, 1, 1], name="dw"),
        helper.make_node("Conv", ["c1", "w1", "b1"], ["c2"], name="pw"),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1, name="fc"),
    ]
    init = {"w0": random_weight(8, 3, 3, 3, seed=1), "wd": random_weight(8, 1, 3, 3, seed=2),
            "w1": random_weight(out_1x1, 8, 1, 1, seed=3), "b1": random_weight(out_1x1, seed=4),
            "wf": random_weight(12, out_1x1, seed=5), "bf": random_weight(12, seed=6)}
    return build_model(nodes, {"x": [1, 3, 16, 16]}, ["y"], init)


def _weights(model, name):
    node = next(n for n in model.graph if n.name == name)
    return const_array(node.inputs[1])


def test_pass_prunes_1x1_and_fc_and_leaves_stem_and_depthwise_dense():
    model = _net()
    stem, dw = _weights(model, "stem").copy(), _weights(model, "dw").copy()
    p = MagnitudePrune(sparsity=0.75, block="4x1")
    assert p(model).modified
    pw = _weights(model, "pw").reshape(16, 8)
    assert _blocks_zero(pw, (4, 1)).sum() == round(0.75 * 32)
    assert (_weights(model, "fc") == 0).mean() == pytest.approx(0.75)
    assert np.array_equal(_weights(model, "stem"), stem) and np.array_equal(_weights(model, "dw"), dw)
    refused = {r.node: r.reason for r in p.refusals}
    assert "first layer" in refused["stem"] and "depthwise" in refused["dw"]
    assert [layer.node for layer in p.layers] == ["pw", "fc"]
    assert op_counts(model) == op_counts(_net())  # only weights change
    (out,) = run_model(model, [np.ones((1, 3, 16, 16), np.float32)])
    assert out.shape == (1, 12) and np.isfinite(out).all()


def test_fc_can_stay_dense_and_a_block_that_does_not_divide_is_refused():
    model = _net(out_1x1=10)
    fc_before = _weights(model, "fc").copy()
    p = MagnitudePrune(sparsity=0.5, block=(4, 1), fc=False)
    assert not p(model).modified
    assert np.array_equal(_weights(model, "fc"), fc_before)
    reasons = " ".join(r.reason for r in p.refusals)
    assert "10 output channels are not a multiple of the 4x1 block" in reasons
    assert "fc=False" in reasons


def test_bad_options_say_what_is_accepted():
    with pytest.raises(EdgecError, match="1x1, 2x1, 4x1"):
        parse_block("3x1")
    with pytest.raises(EdgecError, match=r"\[0, 1\)"):
        MagnitudePrune(sparsity=1.0)
    assert parse_block("unstructured") == (1, 1) and parse_block("4X1") == (4, 1)
