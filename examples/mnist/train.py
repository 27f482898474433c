"""Train the zoo's small models on the 4,000-image MNIST training split and ship the weights.

    .venv/bin/python examples/mnist/train.py                 # all models
    .venv/bin/python examples/mnist/train.py mobilenet_v2    # one

Writes edgec/zoo/weights/<model>-mnist.pt (fp16), usable as zoo:<model>?weights=mnist, and
prints float top-1 on the 1,000-image test split.
"""

from __future__ import annotations

import sys
import time

import torch

from edgec import zoo
from edgec.datasets import mnist
from edgec.training.loop import accuracy, fit
from edgec.zoo.registry import save_trained

# Small enough to ship (under ~1.5 MB each in fp16), large enough to be real CNNs.
MODELS = {
    "mobilenet_v2": dict(in_channels=1, resolution=28, num_classes=10, width=0.5),
    "resnet18": dict(in_channels=1, resolution=28, num_classes=10, width=0.25),
    "mobilenet_v1": dict(in_channels=1, resolution=28, num_classes=10, width=0.5),
    "mlp": dict(),
    # The MNIST transformer: 7x7 patches (16 tokens), 4 pre-norm blocks of width 64. Its int8
    # accuracy is what mixed precision (edgec.quantization.mixed_precision) is measured on.
    "vit_tiny": dict(in_channels=1, resolution=28, num_classes=10, patch=7, dim=64, depth=4, heads=4,
                     mlp_ratio=2),
}
EPOCHS = {"mlp": 15, "mobilenet_v2": 30, "vit_tiny": 20}
LR = {"mlp": 0.05, "mobilenet_v2": 0.05, "vit_tiny": 0.05}


def train(name: str) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    xtr, ytr = mnist("train")
    xte, yte = mnist("test")
    zm = zoo.build(name, **MODELS[name])
    model = zm.module
    if zm.input_shape[1:] != xtr.shape[1:]:
        xtr, xte = xtr.reshape(len(xtr), *zm.input_shape[1:]), xte.reshape(len(xte), *zm.input_shape[1:])
    t = time.time()
    fit(model, xtr, ytr, epochs=EPOCHS.get(name, 15), lr=LR.get(name, 0.1), augment=xtr.ndim == 4,
        on_epoch=lambda e, loss: print(f"  {name} epoch {e + 1}: loss {loss:.4f}", flush=True))
    acc = accuracy(model, xte, yte)
    path = save_trained(model, name, "mnist", zm.config, torch.from_numpy(xte[:1]),
                        {"float_top1_test": acc, "train_seconds": time.time() - t})
    print(f"{name}: float top-1 {acc:.4f} on {len(xte)} test images ({time.time() - t:.0f} s) -> {path}")


if __name__ == "__main__":
    for name in sys.argv[1:] or MODELS:
        train(name)
