import numpy as np
import pytest
from onnx import helper

from edgec.passes.fold_conv_pairs import FoldConvPairs
from helpers import assert_pass_preserves_outputs, build_model, op_counts, random_weight


def _pair(w1, w2, first_attrs=None, second_attrs=None, b1=None, b2=None, size=12, in_channels=None):
    """x -> Conv(w1, b1) -> Conv(w2, b2) -> y."""
    init = {"w1": w1, "w2": w2}
    first_inputs, second_inputs = ["x", "w1"], ["mid", "w2"]
    if b1 is not None:
        init["b1"] = b1
        first_inputs.append("b1")
    if b2 is not None:
        init["b2"] = b2
        second_inputs.append("b2")
    nodes = [
        helper.make_node("Conv", first_inputs, ["mid"], name="first", **(first_attrs or {})),
        helper.make_node("Conv", second_inputs, ["y"], name="second", **(second_attrs or {})),
    ]
    channels = in_channels or w1.shape[1] * (first_attrs or {}).get("group", 1)
    return build_model(nodes, {"x": [1, channels, size, size]}, ["y"], init)


def _merged(model, rtol=1e-5, atol=1e-5):
    p = FoldConvPairs()
    out = assert_pass_preserves_outputs(model, p, rtol=rtol, atol=atol)
    return out, p


def test_strided_kxk_then_1x1_becomes_one_conv():
    # VanillaNet's stem: 4x4 stride-4 conv then a 1x1, both with bias.
    model = _pair(random_weight(8, 3, 4, 4, seed=1), random_weight(6, 8, 1, 1, seed=2),
                  first_attrs={"strides": [4, 4]}, b1=random_weight(8, seed=3), b2=random_weight(6, seed=4))
    out, p = _merged(model)
    assert op_counts(out)["Conv"] == 1
    conv = next(iter(out.graph))
    assert list(conv.attributes.get_ints("strides")) == [4, 4]
    assert "merged 1 conv pair" in p.details[0]


def test_padded_grouped_conv_then_1x1_merges_exactly_when_cheaper():
    # A grouped 3x3 with few groups is nearly dense: the merge saves the 1x1.
    model = _pair(random_weight(8, 4, 3, 3, seed=1), random_weight(4, 8, 1, 1, seed=2),
                  first_attrs={"group": 2, "pads": [1, 1, 1, 1]}, b1=random_weight(8, seed=3))
    out, _ = _merged(model)
    conv = next(iter(out.graph))
    assert op_counts(out)["Conv"] == 1 and conv.attributes.get_int("group", 1) == 1


def test_1x1_then_unpadded_kxk_merges_even_with_a_bias():
    model = _pair(random_weight(16, 8, 1, 1, seed=1), random_weight(4, 16, 3, 3, seed=2),
                  second_attrs={"strides": [2, 2]}, b1=random_weight(16, seed=3), b2=random_weight(4, seed=4))
    out, _ = _merged(model)
    assert op_counts(out)["Conv"] == 1


def test_1x1_without_bias_then_padded_kxk_merges():
    # An expanding 1x1 then a narrowing 3x3: one 3x3 on the narrow input is cheaper.
    model = _pair(random_weight(16, 8, 1, 1, seed=1), random_weight(4, 16, 3, 3, seed=2),
                  second_attrs={"pads": [1, 1, 1, 1]})
    out, _ = _merged(model)
    assert op_counts(out)["Conv"] == 1


def test_1x1_with_bias_then_padded_kxk_is_refused_with_the_border_reason():
    model = _pair(random_weight(16, 8, 1, 1, seed=1), random_weight(4, 16, 3, 3, seed=2),
                  second_attrs={"pads": [1, 1, 1, 1]}, b1=random_weight(16, seed=3))
    out, p = _merged(model)
    assert op_counts(out)["Conv"] == 2
    assert any("borders" in r.reason and r.node == "second" for r in p.refusals)


def test_depthwise_7x7_then_1x1_is_refused_by_the_cost_check():
    model = _pair(random_weight(16, 1, 7, 7, seed=1), random_weight(16, 16, 1, 1, seed=2),
                  first_attrs={"group": 16, "pads": [3, 3, 3, 3]})
    out, p = _merged(model)
    assert op_counts(out)["Conv"] == 2
    (refusal,) = p.refusals
    assert "raise the cost" in refusal.reason and "dense 7x7" in refusal.reason


def test_shared_intermediate_and_non_pointwise_pairs_are_refused():
    w1, w2 = random_weight(6, 4, 1, 1, seed=1), random_weight(6, 6, 1, 1, seed=2)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["mid"], name="first"),
             helper.make_node("Conv", ["mid", "w2"], ["y"], name="second"),
             helper.make_node("Relu", ["mid"], ["z"])]
    shared = build_model(nodes, {"x": [1, 4, 5, 5]}, ["y", "z"], {"w1": w1, "w2": w2})
    _, p = _merged(shared)
    assert any("2 consumers" in r.reason for r in p.refusals)

    both_3x3 = _pair(random_weight(4, 4, 3, 3, seed=1), random_weight(4, 4, 3, 3, seed=2))
    _, p = _merged(both_3x3)
    assert any("neither conv is 1x1" in r.reason for r in p.refusals)

    strided_1x1 = _pair(random_weight(4, 4, 3, 3, seed=1), random_weight(4, 4, 1, 1, seed=2),
                        second_attrs={"strides": [2, 2]})
    _, p = _merged(strided_1x1)
    assert any("not a plain channel mix" in r.reason for r in p.refusals)


def test_chains_merge_step_by_step():
    w = [random_weight(8, 3, 2, 2, seed=1), random_weight(8, 8, 1, 1, seed=2), random_weight(5, 8, 1, 1, seed=3)]
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["a"], strides=[2, 2]),
             helper.make_node("Conv", ["a", "w1", "b1"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["y"])]
    init = {"w0": w[0], "w1": w[1], "w2": w[2], "b0": random_weight(8, seed=4), "b1": random_weight(8, seed=5)}
    model = build_model(nodes, {"x": [1, 3, 8, 8]}, ["y"], init)
    out, _ = _merged(model)
    assert op_counts(out)["Conv"] == 1
    assert len(out.graph.initializers) == 2  # the old weights and biases are gone


@pytest.mark.parametrize("order", ["then_pointwise", "pointwise_then"])
def test_merged_weights_match_the_composition_in_float64(order):
    from edgec.passes.conv_algebra import merge_pointwise_then, merge_then_pointwise

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 5))
    if order == "then_pointwise":
        w1, b1, w2, b2 = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal(4), rng.standard_normal((2, 4, 1, 1)), rng.standard_normal(2)
        w, b = merge_then_pointwise(w1, b1, 1, w2, b2)
        expected = w2[:, :, 0, 0] @ (np.einsum("ocij,cij->o", w1, x) + b1) + b2
    else:
        w1, b1, w2, b2 = rng.standard_normal((4, 3, 1, 1)), rng.standard_normal(4), rng.standard_normal((2, 4, 5, 5)), rng.standard_normal(2)
        w, b = merge_pointwise_then(w1, b1, w2, b2)
        expected = np.einsum("omij,mij->o", w2, np.einsum("mc,cij->mij", w1[:, :, 0, 0], x) + b1[:, None, None]) + b2
    np.testing.assert_allclose(np.einsum("ocij,cij->o", w, x) + b, expected, rtol=1e-12)
