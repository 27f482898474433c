import numpy as np
import pytest
from onnx import helper

from edgec.passes.fold_batchnorm import FoldBatchNorm
from helpers import assert_pass_preserves_outputs, build_model, op_counts, random_weight


def bn_params(prefix: str, channels: int, seed: int = 10) -> dict[str, np.ndarray]:
    # Far from identity (gamma != 1, mean != 0, var != 1) so a wrong fold shows in the numbers.
    return {
        f"{prefix}_gamma": random_weight(channels, seed=seed),
        f"{prefix}_beta": random_weight(channels, seed=seed + 1),
        f"{prefix}_mean": random_weight(channels, seed=seed + 2),
        f"{prefix}_var": random_weight(channels, seed=seed + 3, positive=True),
    }


def bn_node(x: str, y: str, prefix: str = "bn", epsilon: float = 1e-3):
    return helper.make_node(
        "BatchNormalization", [x, f"{prefix}_gamma", f"{prefix}_beta", f"{prefix}_mean", f"{prefix}_var"], [y],
        name=prefix, epsilon=epsilon,
    )


@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_batchnorm_folds_into_conv(with_bias):
    inits = {"w": random_weight(8, 3, 3, 3), **bn_params("bn", 8)}
    conv_inputs = ["x", "w"]
    if with_bias:
        inits["b"] = random_weight(8, seed=5)
        conv_inputs.append("b")
    model = build_model(
        [helper.make_node("Conv", conv_inputs, ["c"], pads=[1, 1, 1, 1]), bn_node("c", "y")],
        {"x": [1, 3, 8, 8]}, ["y"], inits,
    )
    pass_ = FoldBatchNorm()
    out = assert_pass_preserves_outputs(model, pass_)
    assert op_counts(out) == {"Conv": 1}
    assert out.graph.node(0).inputs[2] is not None  # a bias was created when there was none
    assert "bn_gamma" not in out.graph.initializers and "w" not in out.graph.initializers
    assert pass_.details == ["folded 1 BatchNormalization into Conv"]


@pytest.mark.parametrize("group", [2, 8], ids=["grouped", "depthwise"])
def test_grouped_and_depthwise_conv(group):
    model = build_model(
        [helper.make_node("Conv", ["x", "w"], ["c"], group=group, pads=[1, 1, 1, 1]), bn_node("c", "y")],
        {"x": [1, 8, 6, 6]}, ["y"], {"w": random_weight(8, 8 // group, 3, 3), **bn_params("bn", 8)},
    )
    out = assert_pass_preserves_outputs(model, FoldBatchNorm())
    assert op_counts(out) == {"Conv": 1}


@pytest.mark.parametrize("group", [1, 2])
def test_conv_transpose(group):
    # weight [C_in, C_out/group, kH, kW]: 4 in, 6 out
    model = build_model(
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["c"], group=group, strides=[2, 2]),
         bn_node("c", "y")],
        {"x": [1, 4, 5, 5]}, ["y"],
        {"w": random_weight(4, 6 // group, 3, 3), "b": random_weight(6, seed=3), **bn_params("bn", 6)},
    )
    out = assert_pass_preserves_outputs(model, FoldBatchNorm())
    assert op_counts(out) == {"ConvTranspose": 1}


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm(trans_b):
    weight = random_weight(16, 10) if trans_b == 0 else random_weight(10, 16)
    model = build_model(
        [helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=trans_b, alpha=0.5, beta=2.0),
         bn_node("g", "y")],
        {"x": [3, 16]}, ["y"], {"w": weight, "b": random_weight(1, 10, seed=4), **bn_params("bn", 10)},
    )
    out = assert_pass_preserves_outputs(model, FoldBatchNorm())
    assert op_counts(out) == {"Gemm": 1}


def test_conv_with_two_readers_keeps_conv_and_turns_bn_into_mul_add():
    model = build_model(
        [helper.make_node("Conv", ["x", "w"], ["c"]), bn_node("c", "y"),
         helper.make_node("Relu", ["c"], ["r"])],
        {"x": [1, 3, 6, 6]}, ["y", "r"], {"w": random_weight(4, 3, 1, 1), **bn_params("bn", 4)},
    )
    pass_ = FoldBatchNorm()
    out = assert_pass_preserves_outputs(model, pass_)
    assert op_counts(out) == {"Conv": 1, "Mul": 1, "Add": 1, "Relu": 1}
    assert [r.node for r in pass_.refusals] == ["bn"]
    assert "other readers" in pass_.refusals[0].reason


def test_batchnorm_on_graph_input_becomes_mul_add_even_without_shapes():
    # No producer to fold into; the input rank comes from the graph input.
    model = build_model([bn_node("x", "y")], {"x": [2, 5, 3]}, ["y"], bn_params("bn", 5))
    out = assert_pass_preserves_outputs(model, FoldBatchNorm())
    assert op_counts(out) == {"Mul": 1, "Add": 1}
    assert [v.name for v in out.graph.outputs] == ["y"]


def test_shared_weight_is_not_changed_for_its_other_reader():
    model = build_model(
        [helper.make_node("Conv", ["x", "w"], ["c1"]), bn_node("c1", "y1"),
         helper.make_node("Conv", ["x", "w"], ["y2"])],
        {"x": [1, 3, 4, 4]}, ["y1", "y2"], {"w": random_weight(4, 3, 1, 1), **bn_params("bn", 4)},
    )
    out = assert_pass_preserves_outputs(model, FoldBatchNorm())
    assert op_counts(out) == {"Conv": 2}
    assert "w" in out.graph.initializers


def test_batchnorm_with_non_constant_params_is_kept_and_explained():
    model = build_model(
        [helper.make_node("BatchNormalization", ["x", "gamma", "bn_beta", "bn_mean", "bn_var"], ["y"], name="bn")],
        {"x": [1, 4, 2, 2], "gamma": [4]}, ["y"], {k: v for k, v in bn_params("bn", 4).items() if k != "bn_gamma"},
    )
    pass_ = FoldBatchNorm()
    out = assert_pass_preserves_outputs(model, pass_)
    assert op_counts(out) == {"BatchNormalization": 1}
    assert "constants" in pass_.refusals[0].reason
