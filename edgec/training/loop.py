"""A plain classification training loop and evaluation, shared by the examples, QAT and pruning."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F


def _batches(x: np.ndarray, y: np.ndarray, batch: int, shuffle: bool, rng: np.random.Generator):
    order = rng.permutation(len(x)) if shuffle else np.arange(len(x))
    for i in range(0, len(x), batch):
        idx = order[i:i + batch]
        yield torch.from_numpy(x[idx]), torch.from_numpy(y[idx])


def _shift(images: torch.Tensor, rng: np.random.Generator, pixels: int = 2) -> torch.Tensor:
    """Random translation by up to `pixels`: cheap augmentation that helps on 4,000 images."""
    dx, dy = rng.integers(-pixels, pixels + 1, size=2)
    return torch.roll(images, shifts=(int(dy), int(dx)), dims=(2, 3))


def fit(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int = 5, lr: float = 0.1,
        batch: int = 64, seed: int = 0, augment: bool = True, weight_decay: float = 5e-5,
        on_step: Callable[[int], None] | None = None,
        on_epoch: Callable[[int, float], None] | None = None) -> torch.nn.Module:
    """SGD with Nesterov momentum, one-cycle schedule, cross-entropy. `on_step(step)` runs after
    each optimizer step (pruning schedules and QAT freezing hook in there).

    SGD rather than Adam: on 4,000 MNIST images the depthwise MobileNets reached 81% top-1 in two
    epochs with SGD and 41-55% with Adam/AdamW (measured here)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    step = 0
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for xb, yb in _batches(x, y, batch, True, rng):
            if augment and xb.dim() == 4:
                xb = _shift(xb, rng)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += loss.item() * len(xb)
            if on_step is not None:
                on_step(step)
        if on_epoch is not None:
            on_epoch(epoch, total / len(x))
    return model.eval()


@torch.no_grad()
def accuracy(model_or_fn, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy of a torch module or of any callable mapping a batch array to logits."""
    correct = 0
    if isinstance(model_or_fn, torch.nn.Module):
        model_or_fn.eval()
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        if isinstance(model_or_fn, torch.nn.Module):
            logits = model_or_fn(torch.from_numpy(xb)).numpy()
        else:
            logits = np.asarray(model_or_fn(xb))
        correct += int(np.sum(np.argmax(logits, axis=-1) == y[i:i + batch]))
    return correct / len(x)
