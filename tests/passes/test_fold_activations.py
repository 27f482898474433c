import copy

import numpy as np
import pytest
import torch
from onnx import helper

import edgec
from edgec.passes.fold_activations import FoldActivations
from edgec.zoo import build
from helpers import assert_pass_preserves_outputs, build_model, op_counts, random_weight


def _conv_act_conv(act: str, slope=None):
    """x -> Conv 3x3 (bias) -> act -> Conv 1x1 (bias) -> y, the VanillaNet training layer."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="conv1", pads=[1, 1, 1, 1])]
    init = {"w1": random_weight(8, 4, 3, 3, seed=1), "b1": random_weight(8, seed=2),
            "w2": random_weight(6, 8, 1, 1, seed=3), "b2": random_weight(6, seed=4)}
    if act == "LeakyRelu":
        nodes.append(helper.make_node("LeakyRelu", ["a"], ["h"], name="act", alpha=slope))
    else:
        nodes.append(helper.make_node("PRelu", ["a", "slope"], ["h"], name="act"))
        init["slope"] = np.asarray(slope, np.float32)
    nodes.append(helper.make_node("Conv", ["h", "w2", "b2"], ["y"], name="conv2"))
    return build_model(nodes, {"x": [1, 4, 9, 9]}, ["y"], init)


@pytest.mark.parametrize("act,slope", [("LeakyRelu", 1.0), ("PRelu", np.ones((8, 1, 1)))])
def test_identity_activation_goes_and_the_convs_merge(act, slope):
    p = FoldActivations()
    out = assert_pass_preserves_outputs(_conv_act_conv(act, slope), p, rtol=1e-5, atol=1e-5)
    assert dict(op_counts(out)) == {"Conv": 1}
    assert "removed 1 identity activation" in p.details[0]


def test_identity_activation_alone_is_removed_exactly():
    nodes = [helper.make_node("LeakyRelu", ["x"], ["a"], alpha=1.0), helper.make_node("Relu", ["a"], ["y"])]
    out = assert_pass_preserves_outputs(build_model(nodes, {"x": [2, 5]}, ["y"]), FoldActivations(), rtol=0, atol=0)
    assert dict(op_counts(out)) == {"Relu": 1}


@pytest.mark.parametrize("act,slope", [("LeakyRelu", 0.9), ("PRelu", np.full((8, 1, 1), 0.9))])
def test_lambda_below_one_is_refused_with_the_reason(act, slope):
    p = FoldActivations()
    out = assert_pass_preserves_outputs(_conv_act_conv(act, slope), p)
    assert op_counts(out)["Conv"] == 2
    (refusal,) = p.refusals
    assert refusal.node == "act" and "lambda" in refusal.reason and "0.9" in refusal.reason


def test_an_ordinary_nonlinearity_between_convs_is_left_alone_without_noise():
    model = _conv_act_conv("LeakyRelu", 0.01)
    model.graph.node(1).attributes.pop("alpha")
    model.graph.node(1).op_type = "Relu"
    p = FoldActivations()
    assert not p(model).modified
    assert p.refusals == []


def _export(module, x):
    from edgec.frontends.torch_module import export_module

    return export_module(module, (x,))


def test_vanillanet_at_lambda_1_compiles_to_the_reference_deploy_graph(tmp_path):
    zm = build("vanillanet", resolution=32, num_classes=10, width=0.0625)
    deploy = copy.deepcopy(zm.module)
    deploy.switch_to_deploy()
    deploy_convs = op_counts(_export(deploy, zm.example_inputs[0]))["Conv"]
    training_convs = op_counts(_export(zm.module, zm.example_inputs[0]))["Conv"]
    assert (training_convs, deploy_convs) == (14, 9)  # 2 + 2*3 + 2 (+4 series activations) -> halved pairs

    art = edgec.compile(zm.module, zm.example_inputs, target="x86_64-fp32", out_dir=tmp_path, formats=["tflite"])
    report = art.report
    assert report["ir"]["after_passes"]["ops"]["Conv"] == deploy_convs
    assert "LeakyRelu" not in report["ir"]["after_passes"]["ops"]
    vs_torch = report["verification"]["artifacts"]["tflite"]["vs_torch"]
    assert vs_torch["max_rel_error"] < 1e-4
    with torch.no_grad():
        expected = zm.module(zm.example_inputs[0]).numpy()
    np.testing.assert_allclose(art.run(zm.example_inputs[0].numpy())[0], expected, rtol=1e-3, atol=1e-4)


def test_vanillanet_below_lambda_1_keeps_its_pairs_and_says_why():
    from edgec.passes import run_passes

    zm = build("vanillanet", resolution=32, num_classes=10, width=0.0625, act_learn=0.9)
    model, records = run_passes(_export(zm.module, zm.example_inputs[0]),
                                ["constant_folding", "fold_batchnorm", "fold_activations"])
    assert op_counts(model)["Conv"] == 14
    refusals = records[-1]["refusals"]
    assert sum("lambda" in r["reason"] for r in refusals) == 5  # stem, 3 blocks, classifier
