import numpy as np
import pytest
import torch
from torch import nn

from edgec.errors import EdgecError
from edgec.frontends.torch_module import export_module
from edgec.passes import run_passes
from edgec.training.deep_training import ActivationBlend, DeepTraining, lambda_at
from edgec.training.loop import fit
from edgec.zoo import build


def test_linear_and_cosine_schedules_follow_the_reference_and_end_at_exactly_one():
    assert [lambda_at(t) for t in (0, 0.25, 0.5, 1.0, 3.0)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert lambda_at(0.25, "cosine") == pytest.approx(0.5 * (1 - np.cos(np.pi / 4)))
    assert lambda_at(0.5, "cosine") == pytest.approx(0.5)
    assert lambda_at(0.999999, "cosine") < 1.0 and lambda_at(1.0, "cosine") == 1.0
    with pytest.raises(EdgecError, match="linear, cosine"):
        lambda_at(0.5, "step")


def test_deep_training_drives_the_zoo_vanillanet_during_fit():
    zm = build("vanillanet", resolution=32, num_classes=4, width=0.0625, act_learn=0.0)
    model = zm.module
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 4, 32)
    schedule = DeepTraining(model, total_steps=4, ramp_fraction=0.5)  # 4 batches of 8, ramp over 2
    seen = []
    fit(model, x, y, epochs=1, batch=8, lr=0.01, augment=False,
        on_step=lambda step: seen.append((schedule(step), model.stages[0].act_learn)))
    assert seen == [(0.5, 0.5), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0)]


def test_a_users_model_with_blends_folds_to_one_conv_once_finished():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), ActivationBlend(nn.ReLU()),
                          nn.Conv2d(8, 4, 1), ActivationBlend(nn.SiLU()), nn.Conv2d(4, 4, 1)).eval()
    schedule = DeepTraining(model, total_steps=10, shape="cosine")
    assert schedule.value == 0.0 and model[2].act_learn == 0.0
    schedule.finish()
    x = torch.randn(1, 3, 8, 8)
    exported = export_module(model, (x,))
    folded, _ = run_passes(exported, ["constant_folding", "remove_identity", "fold_batchnorm", "fold_activations"])
    assert [n.op_type for n in folded.graph] == ["Conv"]

    from edgec.runtimes.onnxrt import OnnxRuntime

    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(OnnxRuntime.from_ir(folded).run([x.numpy()])[0], expected, rtol=1e-4, atol=1e-5)


def test_a_model_without_blends_is_refused_with_what_to_do():
    with pytest.raises(EdgecError, match="ActivationBlend"):
        DeepTraining(nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()), total_steps=10)
