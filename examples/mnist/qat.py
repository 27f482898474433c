"""PTQ vs QAT on MNIST, at int8 and at W4A8, for the zoo's MNIST-trained MobileNet v2 and ResNet-18.

    .venv/bin/python examples/mnist/qat.py                          # mobilenet_v2 and resnet18
    .venv/bin/python examples/mnist/qat.py resnet18 --bits 4 --epochs 2

For each model and weight width, top-1 on the 1,000-image test split of:
- float: the trained model (zoo weights="mnist"; random init, trained here first, if none);
- PTQ: what `edgec compile` does without QAT: cross-layer equalization, min/max calibration on
  200 training images, bias correction (edgec.quantization.quantize_model), evaluated by
  onnxruntime on the QDQ graph, the reference every integer artifact matches;
- QAT: qat.prepare from the same float weights, fine-tuned with edgec.training.loop.fit on the
  4,000 training images (BatchNorm and ranges frozen for the last 30% of steps), evaluated on
  the QDQ graph that compile builds from it (qat.qdq_model), with the QAT torch model's own
  top-1 beside it (they differ only where float summation order moves a rounding).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from edgec import zoo
from edgec.datasets import mnist, mnist_calibration
from edgec.frontends import load_model
from edgec.ir import clone
from edgec.passes import get_pass, run_passes
from edgec.quantization import quantize_model
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.targets import load_registry
from edgec.training import qat
from edgec.training.loop import accuracy, fit

TARGET = "arm64-int8"  # its passes and activation scheme; weight width is chosen per run
SIZES = {
    "mobilenet_v2": dict(in_channels=1, resolution=28, num_classes=10, width=0.5),
    "resnet18": dict(in_channels=1, resolution=28, num_classes=10, width=0.25),
    "mobilenet_v1": dict(in_channels=1, resolution=28, num_classes=10, width=0.5),
    "mlp": dict(),
}


def qdq_accuracy(qdq_model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 of onnxruntime on a QDQ graph (exported at batch 1, so one image at a time)."""
    runtime = OnnxRuntime.from_ir(qdq_model, optimize=False)
    logits = np.concatenate([runtime.run([x[i:i + 1]])[0] for i in range(len(x))])
    return float(np.mean(np.argmax(logits, axis=1) == y))


def ptq_model(module: torch.nn.Module, example: torch.Tensor, bits: int, calibration: np.ndarray):
    """The QDQ graph `edgec compile` would build by calibration (see pipeline._quantize)."""
    graph = load_model(module, example_inputs=(example,)).model
    graph, _ = run_passes(graph, list(load_registry().target(TARGET).passes))
    graph = get_pass("cross_layer_equalization")(clone(graph)).model
    qdq, _ = quantize_model(graph, calibration, weight_bits=bits, bias_correction=True)
    return qdq


def float_model(name: str, xtr: np.ndarray, ytr: np.ndarray) -> torch.nn.Module:
    if "mnist" in zoo.registry.trained_weights(name):
        return zoo.build(name, weights="mnist").module
    print(f"  no trained {name} weights shipped; training one (examples/mnist/train.py ships them)")
    module = zoo.build(name, **SIZES[name]).module
    return fit(module, xtr, ytr, epochs=10, lr=0.05, augment=xtr.ndim == 4)


def qat_finetune(module: torch.nn.Module, example: torch.Tensor, bits: int, xtr, ytr, epochs: int, lr: float):
    qmodel = qat.prepare(module, TARGET, (example,), weight_bits=bits)
    steps = epochs * ((len(xtr) + 63) // 64)
    freeze_at = int(0.7 * steps)

    def on_step(step: int) -> None:
        if step == freeze_at:
            qat.freeze(qmodel)

    fit(qmodel, xtr, ytr, epochs=epochs, lr=lr, augment=xtr.ndim == 4, on_step=on_step)
    return qmodel.eval()


def run(name: str, bits_list: list[int], epochs: int, lr: float) -> list[dict]:
    xtr, ytr = mnist("train")
    xte, yte = mnist("test")
    if name == "mlp":  # it reads flattened images
        xtr, xte = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
    calibration = mnist_calibration(200).reshape((200,) + xtr.shape[1:])
    module = float_model(name, xtr, ytr)
    example = torch.from_numpy(xte[:1])
    rows = []
    float_top1 = accuracy(module, xte, yte)
    for bits in bits_list:
        t = time.time()
        ptq = qdq_accuracy(ptq_model(module, example, bits, calibration), xte, yte)
        qmodel = qat_finetune(copy.deepcopy(module), example, bits, xtr, ytr, epochs, lr)
        row = {"model": name, "weights": f"W{bits}A8", "float": float_top1, "ptq": ptq,
               "qat_qdq": qdq_accuracy(qat.qdq_model(qmodel), xte, yte),
               "qat_torch": accuracy(qmodel, xte, yte), "seconds": time.time() - t}
        print(f"  {name} W{bits}A8: float {row['float']:.4f}  PTQ {row['ptq']:.4f}  "
              f"QAT {row['qat_qdq']:.4f} (torch {row['qat_torch']:.4f})  [{row['seconds']:.0f} s]", flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["mobilenet_v2", "resnet18"])
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 4], help="weight widths (8: int8, 4: W4A8)")
    parser.add_argument("--epochs", type=int, default=3, help="QAT fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=0.002,
                        help="QAT peak learning rate (one-cycle); 0.01 cost MobileNet v2 0.3-0.5 points here")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = [row for name in args.models for row in run(name, args.bits, args.epochs, args.lr)]
    print(f"\ntop-1 on the MNIST test split (1,000 images); QAT {args.epochs} epochs, lr {args.lr}")
    print(f"{'model':14} {'weights':8} {'float':>7} {'PTQ':>7} {'QAT':>7} {'QAT-float':>10} {'QAT torch':>10}")
    for r in rows:
        print(f"{r['model']:14} {r['weights']:8} {r['float']:7.4f} {r['ptq']:7.4f} {r['qat_qdq']:7.4f} "
              f"{100 * (r['qat_qdq'] - r['float']):+9.1f}p {r['qat_torch']:10.4f}")


if __name__ == "__main__":
    main()
