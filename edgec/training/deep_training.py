"""VanillaNet deep training (Chen et al., 2023): blend each activation toward the identity.

Each layer trains as conv -> A'(x) -> conv with A'(x) = (1 - lambda) A(x) + lambda x. Lambda
rises from 0 to 1 over the first `ramp` part of training and stays 1 after, so the finished
model's blends are the identity and edgec's `fold_activations` pass merges every conv pair
they sat between (a model compiled at lambda < 1 keeps its pairs and the pass says why).

The schedule follows the reference training script (huawei-noah/VanillaNet main.py, per epoch
there, per step here): linear lambda = t, or cosine lambda = (1 - cos(pi t)) / 2, with t the
fraction of the ramp done.

A model takes part through either of:
- a `set_act_learn(value)` method (edgec's zoo VanillaNet, the reference's `change_act`), or
- `ActivationBlend` modules, which make any activation blendable.
`DeepTraining` finds both and is the `on_step` callback of edgec.training.loop.fit.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgec.errors import EdgecError

SHAPES = ("linear", "cosine")


def lambda_at(progress: float, shape: str = "linear") -> float:
    """Lambda after `progress` (0..1, clamped) of the ramp: 0 at the start, exactly 1 at its end."""
    if shape not in SHAPES:
        raise EdgecError(f"lambda schedule shape must be one of {', '.join(SHAPES)}, got '{shape}'")
    t = min(max(float(progress), 0.0), 1.0)
    if t >= 1.0:
        return 1.0  # exactly: fold_activations merges only at lambda == 1
    return t if shape == "linear" else 0.5 * (1.0 - math.cos(math.pi * t))


class ActivationBlend(nn.Module):
    """(1 - lambda) * activation(x) + lambda * x, with lambda (`act_learn`) set by DeepTraining.

    For ReLU the blend is LeakyReLU with slope lambda, computed that way so that the exported
    graph holds a LeakyRelu that fold_activations recognises (alpha = 1 is the identity).
    """

    def __init__(self, activation: nn.Module | None = None):
        super().__init__()
        self.activation = activation if activation is not None else nn.ReLU()
        self.act_learn = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.act_learn
        if isinstance(self.activation, nn.ReLU):
            return F.leaky_relu(x, lam)
        if lam >= 1.0:
            return x
        return (1.0 - lam) * self.activation(x) + lam * x


def blend_setters(model: nn.Module) -> list[Callable[[float], None]]:
    """One setter per independent lambda in `model`: modules with set_act_learn (which set
    their own submodules) and ActivationBlends not already under one of those."""
    setters: list[Callable[[float], None]] = []
    owned: set[int] = set()
    for module in model.modules():
        if id(module) in owned:
            continue
        if callable(getattr(module, "set_act_learn", None)):
            setters.append(module.set_act_learn)
            owned.update(id(m) for m in module.modules())
        elif isinstance(module, ActivationBlend):
            setters.append(lambda value, m=module: setattr(m, "act_learn", float(value)))
    return setters


class DeepTraining:
    """Sets lambda on every blend of `model` as training steps go by.

        schedule = DeepTraining(model, total_steps=steps, ramp_fraction=1/3)
        fit(model, x, y, on_step=schedule)       # lambda 0 -> 1 over the first third
        schedule.finish()                       # lambda exactly 1 before compiling

    ramp_fraction is the reference's decay_epochs / epochs (100 of 300 by default).
    """

    def __init__(self, model: nn.Module, total_steps: int, ramp_fraction: float = 1 / 3,
                 shape: str = "linear"):
        if total_steps < 1:
            raise EdgecError(f"DeepTraining needs total_steps >= 1, got {total_steps}")
        if not 0.0 < ramp_fraction <= 1.0:
            raise EdgecError(f"ramp_fraction must be in (0, 1], got {ramp_fraction}")
        lambda_at(0.0, shape)  # validates the shape now, not at the first step
        self.setters = blend_setters(model)
        if not self.setters:
            raise EdgecError(
                f"{type(model).__name__} has no activation blends: give it a set_act_learn(value) method "
                "or wrap the activations between convs in edgec.training.deep_training.ActivationBlend"
            )
        self.ramp_steps = max(1, round(total_steps * ramp_fraction))
        self.shape = shape
        self.value = 0.0
        self(0)

    def __call__(self, step: int) -> float:
        """Set lambda for training step `step` (0 = before the first); returns it."""
        self.value = lambda_at(step / self.ramp_steps, self.shape)
        for set_value in self.setters:
            set_value(self.value)
        return self.value

    def finish(self) -> None:
        """Lambda = 1 everywhere: the state in which the model is compiled."""
        self(self.ramp_steps)
