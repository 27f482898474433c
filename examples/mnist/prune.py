"""Gradual magnitude pruning of the MNIST-trained MobileNet to 80% and 90%, with fine-tuning.

    .venv/bin/python examples/mnist/prune.py          # mobilenet_v2, 80% and 90%, unstructured (~7 min, 2 cores)
    .venv/bin/python examples/mnist/prune.py --block 4x1 --epochs 10 --json out/prune.json

For each target sparsity, top-1 on the 1,000-image test split of:
- dense: the trained model (zoo weights="mnist");
- one-shot: magnitude pruning without any training (what `edgec prune` does); on these
  small nets it collapses past ~50%: fine-tuning is what makes high sparsity usable;
- gradual: edgec.training.pruning.gradual on the 4,000 training images, sparsity rising along
  Zhu & Gupta's cubic schedule over the first half of the steps, the rest fine-tuning at the
  final sparsity;
- deployed: that model compiled for wasm-sparse and run by LiteRT on the host (skip with
  --no-deploy); it must give the gradual column's top-1.

The 1x1 convolutions are pruned (the classifier too with --fc); the first conv and the
depthwise layers stay dense. The sparsity is that of the pruned layers' weights.

These 28x28 one-channel models do not meet XNNPACK's sparse-region rules (the region starts
at a 3x3 stride-2 conv on 3 channels); the compile report says so. The speed comparison is
benchmarks/bench_sparse.py, on the 224x224 zoo models.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import edgec
from edgec import zoo
from edgec.datasets import mnist
from edgec.runtimes.litert import LiteRTRuntime
from edgec.training import pruning
from edgec.training.loop import accuracy, fit

BATCH = 64


def litert_top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    runtime = LiteRTRuntime(path)
    logits = np.concatenate([runtime.run([x[i:i + 1]])[0] for i in range(len(x))])
    return float(np.mean(np.argmax(logits, axis=1) == y))


def gradual_prune(module: torch.nn.Module, sparsity: float, block: str, fc: bool, xtr, ytr, epochs: int,
                  lr: float, until: float):
    steps = epochs * ((len(xtr) + BATCH - 1) // BATCH)
    sched = pruning.gradual(module, final_sparsity=sparsity, block=block, start=0, end=int(until * steps),
                            frequency=max(1, steps // 60), fc=fc)
    fit(module, xtr, ytr, epochs=epochs, lr=lr, batch=BATCH, on_step=lambda step: sched.step())
    return sched


def run(name: str, sparsities: list[float], block: str, fc: bool, epochs: int, lr: float, until: float,
        deploy: bool) -> list[dict]:
    xtr, ytr = mnist("train")
    xte, yte = mnist("test")
    dense = zoo.build(name, weights="mnist").module.eval()
    dense_top1 = accuracy(dense, xte, yte)
    rows = []
    for sparsity in sparsities:
        t = time.time()
        one_shot = copy.deepcopy(dense)
        pruning.prune(one_shot, sparsity, block, fc=fc)
        model = copy.deepcopy(dense)
        sched = gradual_prune(model, sparsity, block, fc, xtr, ytr, epochs, lr, until)
        layers = sched.report()
        row = {"model": name, "sparsity": sparsity, "block": block, "dense": dense_top1,
               "one_shot": accuracy(one_shot, xte, yte), "gradual": accuracy(model, xte, yte),
               "zero_fraction": pruning.zero_fraction(layers), "layers": len(layers),
               "left_dense": [s.name for s in sched.skipped]}
        if deploy:
            with tempfile.TemporaryDirectory() as out:
                art = edgec.compile(model, example_inputs=(torch.from_numpy(xte[:1]),), target="wasm-sparse",
                                    out_dir=out, name=name)
                row["deployed"] = litert_top1(art.paths["tflite"], xte, yte)
                row["xnnpack"] = art.report["artifacts"][0]["lowering"]["sparse"]["summary"]
        row["seconds"] = time.time() - t
        print(f"  {name} {sparsity:.0%} {block}: dense {dense_top1:.3f}  one-shot {row['one_shot']:.3f}  "
              f"gradual {row['gradual']:.3f}" + (f"  deployed {row['deployed']:.3f}" if deploy else "")
              + f"  ({row['zero_fraction']:.1%} of {row['layers']} layers' weights zero) [{row['seconds']:.0f} s]",
              flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["mobilenet_v2"])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.8, 0.9])
    parser.add_argument("--block", default="1x1", help="1x1 (unstructured), 2x1 or 4x1")
    parser.add_argument("--fc", action="store_true", help="prune the classifier too (default: 1x1 convs only, "
                        "the layers XNNPACK's sparse kernels run)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs while pruning and fine-tuning "
                        "(as many as the dense model trained for)")
    parser.add_argument("--lr", type=float, default=0.05, help="peak learning rate (one-cycle)")
    parser.add_argument("--prune-until", type=float, default=0.5,
                        help="fraction of the steps over which sparsity rises; the rest fine-tunes")
    parser.add_argument("--no-deploy", dest="deploy", action="store_false",
                        help="skip compiling for wasm-sparse and checking the artifact's top-1")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = [row for name in args.models
            for row in run(name, args.sparsity, args.block, args.fc, args.epochs, args.lr, args.prune_until,
                           args.deploy)]
    print(f"\ntop-1 on the MNIST test split (1,000 images); {args.epochs} epochs, lr {args.lr}, block {args.block}"
          f"{', classifier pruned too' if args.fc else ''}")
    print(f"{'model':14} {'sparsity':>8} {'dense':>7} {'one-shot':>9} {'gradual':>8} {'vs dense':>9} {'deployed':>9}")
    for r in rows:
        print(f"{r['model']:14} {r['sparsity']:8.0%} {r['dense']:7.3f} {r['one_shot']:9.3f} {r['gradual']:8.3f} "
              f"{100 * (r['gradual'] - r['dense']):+8.1f}p {r.get('deployed', float('nan')):9.3f}")
    if rows and "xnnpack" in rows[0]:
        print(rows[0]["xnnpack"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
