#!/usr/bin/env python3
"""Compile zoo models for the CUDA targets and, where a GPU exists, verify and time them.

    python scripts/cuda_check.py [--out DIR] [--models mobilenet_v2,resnet18]
                                 [--targets cuda-fp32,cuda-fp16] [--runs 50] [--build-only]

For each model and target: `edgec.compile` (TVM's CUDA Relax pipeline, kernels scheduled by
dlight's GPU rules; cuda-fp16 computes conv/matmul in fp16 with fp32 accumulation). It builds
on any machine: no GPU or driver is needed. Where TVM sees a GPU (gpu0), compile verifies the
library on it against onnxruntime (CPU) within the target's tolerance, and this script then
times it with `edgec.bench.benchmark(device="gpu0")` and, when onnxruntime has its CUDA
provider, the same float ONNX graph under onnxruntime-CUDA (one after the other).

Without a GPU it says "not run: no GPU" and exits 0 after the builds (exit 1 on a build or
verification failure). The last line is one JSON object: {"results": [...], "gpu": ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def build(model: str, target: str, out: Path) -> dict:
    import edgec

    t0 = time.perf_counter()
    art = edgec.compile(f"zoo:{model}", target=target, out_dir=out / f"{model}.{target}", formats=["tvm"])
    lib = art.paths["tvm"]
    verification = art.report.get("verification", {}).get("artifacts", {}).get("tvm", {})
    return {"model": model, "target": target, "library": str(lib), "build_s": round(time.perf_counter() - t0, 1),
            "size_kib": round(lib.stat().st_size / 1024), "cuda_kernels": embedded_cuda_kernels(lib),
            "verified": verification.get("ran", False),
            "where": verification.get("where") or verification.get("why"),
            "max_rel_error": (verification.get("vs_float") or {}).get("max_rel_error")}


def embedded_cuda_kernels(path: Path) -> int:
    """How many __global__ kernels the library carries as CUDA C (what TVM embeds when the
    build machine has no CUDA driver; the CUDA runtime compiles them when it loads)."""
    return path.read_bytes().count(b"__global__")


def time_vs_onnxruntime(entry: dict, out: Path, runs: int) -> None:
    """TVM on gpu0, and onnxruntime's CUDA provider on the same float graph when installed."""
    import numpy as np
    import onnxruntime as ort

    from edgec.bench import benchmark
    from edgec.frontends import load_model
    from edgec.fsutil import atomic_write_bytes
    from edgec.ir import sample_inputs, to_bytes

    res = benchmark(entry["library"], device="gpu0", runs=runs, warmup=10)
    entry["tvm_median_ms"] = round(res.stats.median_ms, 4)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        entry["onnxruntime_cuda"] = "not measured: onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)"
        return
    imported = load_model(f"zoo:{entry['model']}")
    onnx_path = out / f"{entry['model']}.fp32.onnx"
    atomic_write_bytes(onnx_path, to_bytes(imported.model))
    sess = ort.InferenceSession(str(onnx_path), providers=["CUDAExecutionProvider"])
    feeds = {i.name: x for i, x in zip(sess.get_inputs(), sample_inputs(imported.model, seed=1))}
    for _ in range(10):
        sess.run(None, feeds)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        samples.append((time.perf_counter() - t0) * 1e3)
    entry["onnxruntime_cuda_median_ms"] = round(float(np.median(samples)), 4)
    entry["tvm_over_onnxruntime_cuda"] = round(entry["tvm_median_ms"] / entry["onnxruntime_cuda_median_ms"], 3)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the libraries (default: a temp dir)")
    parser.add_argument("--models", default="mobilenet_v2,resnet18", help="zoo model names, comma-separated")
    parser.add_argument("--targets", default="cuda-fp32,cuda-fp16")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--build-only", action="store_true", help="do not time even if a GPU exists")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="edgec-cuda-"))
    out.mkdir(parents=True, exist_ok=True)

    from edgec.bench.devices import cuda_status
    from edgec.errors import EdgecError

    gpu, why = cuda_status(0)
    results, failed = [], False
    for model in args.models.split(","):
        for target in args.targets.split(","):
            try:
                entry = build(model, target, out)
            except EdgecError as exc:  # a build or verification failure
                results.append({"model": model, "target": target, "error": str(exc).splitlines()[0]})
                print(f"FAILED {model} {target}: {exc}", file=sys.stderr)
                failed = True
                continue
            print(f"built {entry['library']} ({entry['size_kib']} KiB, {entry['cuda_kernels']} CUDA kernels) "
                  f"in {entry['build_s']} s; verified: {entry['where']}", file=sys.stderr)
            if gpu and not args.build_only:
                time_vs_onnxruntime(entry, out, args.runs)
                print(f"  TVM {entry['tvm_median_ms']} ms; onnxruntime CUDA: "
                      f"{entry.get('onnxruntime_cuda_median_ms', entry.get('onnxruntime_cuda'))}", file=sys.stderr)
            results.append(entry)
    if not gpu:
        print(f"not run: no GPU ({why})", file=sys.stderr)
    print(json.dumps({"gpu": why if gpu else None, "results": results}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
