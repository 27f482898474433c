"""Transformers in int8: float vs plain int8 vs budgeted mixed precision (float fallback, 16x8).

    .venv/bin/python benchmarks/bench_transformer_int8.py               # MNIST transformer + ViT-tiny shape
    .venv/bin/python benchmarks/bench_transformer_int8.py --budget 0.5 --skip-vit

1. The bundled MNIST transformer (zoo:vit_tiny?weights=mnist, 4 blocks): top-1 on the 1,000-image
   MNIST test split with each TFLite artifact in LiteRT, and top-1 agreement with float; the
   layers each scheme moved out of int8.
2. The ViT-Tiny shape (12 blocks, width 192, 3 heads; random weights, calibrated and scored on
   random inputs, so only agreement with float and SQNR mean anything), at 64x64 input (16
   tokens) so that the per-layer search fits on two cores; the same per-layer figures hold
   for 224 (196 tokens) at 12x the cost. Figures are those of the QDQ graphs (onnxruntime),
   which the artifacts compute.

Writes benchmarks/results/transformer_int8.json. The integer compiles pass verify=False: the
output-level 1-LSB verification rejects these deep attention stacks on rounding ties that pile
up through depth (the layer-by-layer verifier is the fix); accuracy is measured here instead.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import edgec
from edgec.datasets import mnist, mnist_calibration
from edgec.frontends import load_model
from edgec.passes import run_passes
from edgec.quantization import quantize_model
from edgec.quantization.calibration import collect_statistics, load_calibration
from edgec.quantization.mixed_precision import assignment_options, choose_precisions
from edgec.runtimes.litert import LiteRTRuntime
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.targets import get_target
from edgec.verify import compare_outputs

REPO = Path(__file__).resolve().parent.parent
TARGET = "x86_64-int8"
VIT_SHAPE = "zoo:vit_tiny?num_classes=1000&resolution=64&patch=16"


def _top1_and_agreement(path: Path, x: np.ndarray, y: np.ndarray, reference: np.ndarray | None):
    rt = LiteRTRuntime(path)
    preds = np.array([int(np.argmax(rt.run([x[i:i + 1]])[0])) for i in range(len(x))])
    agreement = None if reference is None else float(np.mean(preds == reference))
    return float(np.mean(preds == y)), agreement, preds


def mnist_transformer(budget: float, out: Path) -> dict:
    calib = out / "calib.npz"
    np.savez(calib, x=mnist_calibration(200))
    spec = "zoo:vit_tiny?weights=mnist"
    x, y = mnist("test")
    rows = {}
    t = time.perf_counter()
    fp32 = edgec.compile(spec, target="x86_64-fp32", out_dir=out / "fp32", formats=["tflite"])
    top1, _, float_preds = _top1_and_agreement(fp32.paths["tflite"], x, y, None)
    rows["float"] = {"top1": top1, "compile_s": time.perf_counter() - t,
                     "size_bytes": fp32.paths["tflite"].stat().st_size}
    variants = {"int8": {}, "int8+float fallback": {"accuracy_budget": budget},
                "int8+16x8 layers": {"accuracy_budget": budget, "fallback_precision": "int16"}}
    for name, extra in variants.items():
        t = time.perf_counter()
        art = edgec.compile(spec, target=TARGET, out_dir=out / name.replace(" ", "_"), formats=["tflite"],
                            calibration=calib, verify=False, **extra)
        seconds = time.perf_counter() - t
        top1, agreement, _ = _top1_and_agreement(art.paths["tflite"], x, y, float_preds)
        choice = art.report["quantization"].get("mixed_precision")
        rows[name] = {"top1": top1, "top1_agreement_with_float": agreement, "compile_s": seconds,
                      "size_bytes": art.paths["tflite"].stat().st_size}
        if choice is not None:
            rows[name].update(moved_layers=choice["moved_layers"], calibration_figures=choice["result"],
                              baseline_int8=choice["baseline_int8"])
        print(f"  {name}: top-1 {top1:.3f} (float {rows['float']['top1']:.3f}), agreement {agreement:.3f}, "
              f"{len(rows[name].get('moved_layers', []))} layers moved, {seconds:.0f} s", flush=True)
    return rows


def vit_shape(budget: float, samples: int) -> dict:
    """QDQ figures of the ViT-Tiny shape on random data: plain int8 and both fallbacks."""
    imported = load_model(VIT_SHAPE)
    model, _ = run_passes(imported.model, list(get_target(TARGET).passes))
    data = load_calibration("random", model, limit=samples)
    stats = collect_statistics(model, data)
    ref = OnnxRuntime.from_ir(model, optimize=False)
    xs = data.samples
    reference = [ref.run(s) for s in xs]
    names = [v.name for v in model.graph.outputs]

    def figures(**options) -> dict:
        qdq, _ = quantize_model(model, data, statistics=stats, **options)
        rt = OnnxRuntime.from_ir(qdq, optimize=False)
        figs = compare_outputs([rt.run(s) for s in xs], reference, names)
        return {"sqnr_db": figs["sqnr_db"], "top1_agreement": figs["top1_agreement"]}

    rows = {"int8": figures()}
    print(f"  ViT-Tiny shape int8: {rows['int8']}", flush=True)
    for fallback in ("float", "int16"):
        t = time.perf_counter()
        choice = choose_precisions(model, data, stats, budget, fallback=fallback, samples=samples)
        rows[f"int8+{fallback}"] = {**figures(**assignment_options(frozenset(choice["nodes"]), fallback)),
                                    "moved_layers": choice["moved_layers"],
                                    "candidates": len(choice["layers"]), "search_s": time.perf_counter() - t,
                                    "noisiest": choice["layers"][:8]}
        print(f"  ViT-Tiny shape int8+{fallback}: {len(choice['moved_layers'])}/{len(choice['layers'])} layers "
              f"moved, {rows[f'int8+{fallback}']['sqnr_db']:.1f} dB, agreement "
              f"{rows[f'int8+{fallback}']['top1_agreement']}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=0.5, help="top-1 agreement points (MNIST)")
    parser.add_argument("--vit-budget", type=float, default=5.0, help="top-1 agreement points (ViT shape)")
    parser.add_argument("--vit-samples", type=int, default=64)
    parser.add_argument("--skip-vit", action="store_true")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "transformer_int8.json")
    args = parser.parse_args()
    result = {"budget": args.budget}
    with tempfile.TemporaryDirectory() as tmp:
        print("MNIST transformer (zoo:vit_tiny?weights=mnist), top-1 on the MNIST test split:", flush=True)
        result["mnist_transformer"] = mnist_transformer(args.budget, Path(tmp))
    if not args.skip_vit:
        print(f"ViT-Tiny shape ({VIT_SHAPE}), random weights and inputs, budget {args.vit_budget}:", flush=True)
        result["vit_tiny_shape"] = {"spec": VIT_SHAPE, "budget": args.vit_budget, "samples": args.vit_samples,
                                    **vit_shape(args.vit_budget, args.vit_samples)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=float))
    print(f"-> {args.json}")


if __name__ == "__main__":
    main()
