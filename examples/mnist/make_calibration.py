"""Write a class-balanced MNIST calibration set (200 training images, normalized) as .npz.

    .venv/bin/python examples/mnist/make_calibration.py out/demo/mnist_calib.npz [--count 200]
"""

import argparse
from pathlib import Path

import numpy as np

from edgec.datasets import mnist_calibration

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=200)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, x=mnist_calibration(args.count))
    print(f"{args.out}: {args.count} MNIST training images, shape (N, 1, 28, 28)")
