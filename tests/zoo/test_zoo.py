"""The model zoo: every model builds, is deterministic, depends on its input, exports to ONNX
that onnxruntime runs to the same numbers; VanillaNet's deploy form equals its training form."""

from __future__ import annotations

import contextlib
import copy
import io
import time
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgec import zoo
from edgec.errors import EdgecError
from edgec.ir import to_bytes

# Small sizes: the whole file must run in well under a minute on two shared cores.
SMALL = {
    "mobilenet_v1": dict(resolution=32, width=0.25, num_classes=10),
    "mobilenet_v2": dict(resolution=32, width=0.25, num_classes=10),
    "resnet18": dict(resolution=32, width=0.25, num_classes=10),
    "vanillanet": dict(resolution=32, num_classes=10),
    "convfirst": dict(resolution=32, width=0.5, num_classes=10),
    "mlp": dict(),
    "transformer_block": dict(seq_len=16, dim=32, heads=4),
    "vit_tiny": dict(resolution=32, patch=8, dim=32, depth=2, heads=2, num_classes=10),
}


def run(model: zoo.ZooModel, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.module(x)


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / a.norm()).item()


def export_and_run_onnxruntime(model: zoo.ZooModel) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.module, model.example_inputs, dynamo=True, opset_version=21,
                                    verbose=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(to_bytes(program.model), options, providers=["CPUExecutionProvider"])
    (x,) = model.example_inputs
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def test_names_lists_every_model():
    assert zoo.names() == sorted(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_model_builds_in_eval_mode_and_depends_on_its_input(name):
    model = zoo.build(name, **SMALL[name])
    assert not any(m.training for m in model.module.modules())
    (x,) = model.example_inputs
    assert tuple(x.shape) == model.input_shape and x.shape[0] == 1

    y1 = run(model, x)
    y2 = run(model, torch.randn(model.input_shape, generator=torch.Generator().manual_seed(99)))
    assert y1.shape[0] == 1
    assert torch.isfinite(y1).all() and torch.isfinite(y2).all()
    assert y1.std() > 1e-3, "all outputs equal: the model is degenerate"
    # A random-init net whose output barely depends on the input would make verification vacuous.
    assert relative_difference(y1, y2) > 0.1


@pytest.mark.parametrize("name", sorted(SMALL))
def test_build_is_deterministic_per_seed(name):
    a = zoo.build(name, **SMALL[name], seed=3)
    b = zoo.build(name, **SMALL[name], seed=3)
    c = zoo.build(name, **SMALL[name], seed=4)
    for (key, ta), tb in zip(a.module.state_dict().items(), b.module.state_dict().values()):
        assert torch.equal(ta, tb), key
    assert torch.equal(a.example_inputs[0], b.example_inputs[0])
    x = a.example_inputs[0]
    assert torch.equal(run(a, x), run(b, x))
    assert relative_difference(run(a, x), run(c, x)) > 0.1


def test_build_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    zoo.build("mlp")
    assert torch.equal(torch.rand(4), expected)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_onnx_export_matches_torch_in_onnxruntime(name):
    model = zoo.build(name, **SMALL[name])
    expected = run(model, model.example_inputs[0]).numpy()
    actual = export_and_run_onnxruntime(model)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_requested_sizes_reach_the_model():
    mnist = zoo.build("mobilenet_v2", in_channels=1, resolution=28, num_classes=10, width=0.25)
    assert mnist.input_shape == (1, 1, 28, 28)
    assert run(mnist, mnist.example_inputs[0]).shape == (1, 10)

    cifar_mlp = zoo.build("mlp", in_channels=3, resolution=32, num_classes=7)
    assert cifar_mlp.input_shape == (1, 3 * 32 * 32)
    assert run(cifar_mlp, cifar_mlp.example_inputs[0]).shape == (1, 7)

    block = zoo.build("transformer_block", seq_len=8, dim=16, heads=2)
    assert run(block, block.example_inputs[0]).shape == (1, 8, 16)
    classifier = zoo.build("transformer_block", seq_len=8, dim=16, heads=2, num_classes=5)
    assert run(classifier, classifier.example_inputs[0]).shape == (1, 5)


def test_transformer_block_is_far_from_the_identity():
    # Residual branches that add only a few percent would hide a broken attention from verification.
    model = zoo.build("transformer_block", **SMALL["transformer_block"])
    x = model.example_inputs[0]
    assert relative_difference(x, run(model, x)) > 0.3


def test_config_records_every_option_and_the_seed():
    model = zoo.build("resnet18", width=0.25, resolution=32, seed=5)
    assert model.config == {"num_classes": 1000, "resolution": 32, "in_channels": 3, "width": 0.25, "seed": 5}
    assert model.name == "resnet18" and "ResNet" in model.description


def test_default_mobilenet_v2_runs_at_224():
    start = time.perf_counter()
    model = zoo.build("mobilenet_v2")
    # The budget is < 1 s; 10 s only catches a regression such as calibrating on a huge batch,
    # without failing on a busy shared machine.
    assert time.perf_counter() - start < 10
    assert model.input_shape == (1, 3, 224, 224) == zoo.describe("mobilenet_v2")["input_shape"]
    y = run(model, model.example_inputs[0])
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


# --- VanillaNet: deep-training form vs deploy form -------------------------------------------

@pytest.mark.parametrize("depth, stages", [(5, 3), (6, 4)])
def test_vanillanet_deploy_form_equals_training_form_at_lambda_1(depth, stages):
    model = zoo.build("vanillanet", resolution=32, num_classes=10, depth=depth, width=0.0625)
    training = model.module
    assert training.act_learn == 1.0 and len(training.stages) == stages
    deployed = copy.deepcopy(training)
    deployed.switch_to_deploy()

    x = model.example_inputs[0]
    expected, actual = run(model, x), deployed(x).detach()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())

    # As in the reference: stem, each block and the head each go from two convs to one; the
    # series activations' depthwise kernels are parameters, not Conv2d modules, in both forms.
    assert count(training, nn.Conv2d) == 2 + 2 * stages + 2
    assert count(deployed, nn.Conv2d) == 1 + stages + 1
    assert count(training, nn.BatchNorm2d) > 0 and count(deployed, nn.BatchNorm2d) == 0


def test_vanillanet_act_learn_blends_relu_towards_identity():
    model = zoo.build("vanillanet", resolution=32, num_classes=10, width=0.0625)
    net, x = model.module, model.example_inputs[0]
    linear = run(model, x)
    net.set_act_learn(0.0)
    assert all(stage.act_learn == 0.0 for stage in net.stages)
    assert relative_difference(linear, run(model, x)) > 0.01
    with pytest.raises(EdgecError, match="act_learn = 1"):
        net.switch_to_deploy()  # would silently change the function: the ReLUs cannot merge


def test_vanillanet_option_act_learn_sets_lambda():
    net = zoo.build("vanillanet", resolution=32, width=0.0625, act_learn=0.25).module
    assert net.act_learn == 0.25 and all(stage.act_learn == 0.25 for stage in net.stages)


# --- errors and the CLI spec -----------------------------------------------------------------

def test_unknown_name_lists_the_known_ones():
    with pytest.raises(EdgecError, match="unknown zoo model 'mobilenet_v9'.*mobilenet_v2.*vanillanet"):
        zoo.build("mobilenet_v9")


def test_bad_option_is_named():
    with pytest.raises(EdgecError, match="no option 'widht'.*width"):
        zoo.build("mobilenet_v2", widht=0.5)
    with pytest.raises(EdgecError, match="option 'resolution' must be int"):
        zoo.build("mobilenet_v2", resolution="big")
    with pytest.raises(EdgecError, match="no option 'resolution'"):
        zoo.build("transformer_block", resolution=32)  # tokens in, not images
    with pytest.raises(EdgecError, match="multiple of 32"):
        zoo.build("vanillanet", resolution=28)
    with pytest.raises(EdgecError, match="'width' must be positive"):
        zoo.build("resnet18", width=0)


def test_common_options_left_as_none_are_accepted_by_every_model():
    model = zoo.build("transformer_block", num_classes=None, resolution=None, in_channels=None, seq_len=4,
                      dim=8, heads=2)
    assert model.input_shape == (1, 4, 8)


def test_parse_spec_types_values_by_option():
    assert zoo.parse_spec("mobilenet_v2?resolution=96&num_classes=10&width=0.5&seed=7") == (
        "mobilenet_v2", {"resolution": 96, "num_classes": 10, "width": 0.5, "seed": 7})
    name, kwargs = zoo.parse_spec("vanillanet?width=1")
    assert name == "vanillanet" and kwargs == {"width": 1.0} and isinstance(kwargs["width"], float)
    assert zoo.parse_spec("resnet18") == ("resnet18", {})
    name, kwargs = zoo.parse_spec("mlp?hidden=32&layers=1")
    assert zoo.build(name, **kwargs).module.classifier.in_features == 32


@pytest.mark.parametrize("spec, message", [
    ("alexnet?resolution=96", "unknown zoo model 'alexnet'"),
    ("mobilenet_v2?resoluton=96", "no option 'resoluton'"),
    ("mobilenet_v2?resolution=9.6", "'resolution' must be int"),
    ("mobilenet_v2?resolution", "key=value"),
])
def test_parse_spec_rejects_bad_specs(spec, message):
    with pytest.raises(EdgecError, match=message):
        zoo.parse_spec(spec)


def test_describe_needs_no_build():
    info = zoo.describe("mlp")
    assert info["input_shape"] == (1, 784)
    assert info["options"]["num_classes"] == 10 and "MLP" in info["description"]
