import numpy as np
import pytest
import torch
from torch import nn

from edgec.errors import EdgecError
from edgec.training import pruning


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),  # first conv: stays dense
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: stays dense
        nn.Conv2d(8, 16, 1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 12),
    )


def _zero_blocks(weight: torch.Tensor, rows: int) -> int:
    m = (weight.detach().reshape(weight.shape[0], -1) == 0).reshape(weight.shape[0] // rows, rows, -1)
    assert torch.equal(m.all(dim=1), m.any(dim=1)), "a block is only partly zero"
    return int(m.all(dim=1).sum())


def test_polynomial_schedule_rises_fast_then_slow():
    s = [pruning.polynomial_sparsity(t, 0.9, 100, 1100) for t in (0, 100, 350, 600, 1100, 5000)]
    assert s[0] == s[1] == 0.0 and s[-2] == s[-1] == 0.9
    assert s[3] == pytest.approx(0.9 * (1 - 0.5 ** 3))  # halfway: 7/8 of the way there
    assert s[2] - s[1] > s[4] - s[3]  # the first quarter prunes more than the last half


def test_gradual_pruning_trains_to_the_exact_final_sparsity_in_4x1_blocks():
    model = _net()
    first, depthwise = model[0].weight.detach().clone(), model[2].weight.detach().clone()
    sched = pruning.gradual(model, final_sparsity=0.75, block=(4, 1), start=2, end=12, frequency=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 12, (8,))
    seen = []
    for _ in range(16):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        seen.append(sched.sparsity)
    assert seen[0] == 0.0 and 0 < seen[6] < 0.75 and seen[-1] == 0.75  # ramps up, then holds
    assert [name for name, _ in sched.layers] == ["3", "5", "8"]
    for _, m in sched.layers:
        blocks = m.weight.shape[0] // 4 * m.weight[0].numel()
        assert _zero_blocks(m.weight, 4) == round(0.75 * blocks)  # exact, after momentum kept pushing
    # First and depthwise convs trained freely: changed, but not pruned.
    assert not torch.equal(model[0].weight, first) and (model[0].weight != 0).all()
    assert not torch.equal(model[2].weight, depthwise) and (model[2].weight != 0).all()
    assert {r.node: r.sparsity for r in sched.report()} == pytest.approx({"3": 0.75, "5": 0.75, "8": 0.75})


def test_one_shot_and_exported_program_pruning_match_and_survive_save(tmp_path):
    model, x = _net().eval(), torch.randn(1, 3, 16, 16)
    ep = torch.export.export(model, (x,))
    layers, skipped = pruning.prune_exported(ep, 0.5, "2x1", fc=False)
    assert [layer.node for layer in layers] == ["3.weight", "5.weight"]
    reasons = {s.name: s.reason for s in skipped}
    assert "first convolution" in reasons["0.weight"] and "depthwise" in reasons["2.weight"]
    assert "fc=False" in reasons["8.weight"]
    torch.export.save(ep, tmp_path / "p.pt2")
    loaded = torch.export.load(tmp_path / "p.pt2")
    for fqn in ("3.weight", "5.weight"):
        w = loaded.state_dict[fqn]
        assert _zero_blocks(w, 2) == round(0.5 * w.numel() / 2)

    pruning.prune(model, 0.5, "2x1", fc=False)  # the same rule on the module itself
    for fqn in ("3.weight", "5.weight"):
        assert torch.equal(model.state_dict()[fqn], loaded.state_dict[fqn])
    np.testing.assert_allclose(loaded.module()(x).detach().numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_bad_schedules_are_refused():
    with pytest.raises(EdgecError, match="must come after"):
        pruning.gradual(_net(), end=0)
    with pytest.raises(EdgecError, match="nothing to prune"):
        pruning.gradual(nn.Sequential(nn.Conv2d(3, 4, 3)))
