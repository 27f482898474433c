"""What int8 buys on the bundled example: float vs int8 top-1 on the MNIST test split (1,000 real
images), file size ratio, and latency ratio timed interleaved (A B A B, one process, one thread).

    .venv/bin/python examples/mnist/int8_summary.py out/demo/mobilenet_v2.arm64-int8.tflite \\
        --float out/demo/mobilenet_v2.arm64-fp32.tflite [--runs 200]

Both files are TFLite flatbuffers, run here by LiteRT with XNNPACK (the arm64 files are
portable: the same kernels run on this host). `make demo` ends with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from edgec.runtimes.litert import LiteRTRuntime

    runtime = LiteRTRuntime(path)
    shape = tuple(runtime.inputs[0].shape)  # e.g. (1, 1, 28, 28), or (1, 784) for an MLP
    hits = sum(int(np.argmax(runtime.run([x[i].reshape(shape)])[0])) == int(y[i]) for i in range(len(x)))
    return hits / len(x)


def summarize(int8_path: Path, float_path: Path, runs: int) -> dict:
    from edgec.bench import benchmark_vs
    from edgec.datasets import mnist

    x, y = mnist("test")
    vs = benchmark_vs(float_path, int8_path, device="host", runs=runs, warmup=20, threads=1)
    return {
        "images": len(x),
        "float_top1": top1(float_path, x, y),
        "int8_top1": top1(int8_path, x, y),
        "float_bytes": float_path.stat().st_size,
        "int8_bytes": int8_path.stat().st_size,
        "float_ms": vs.a.median_ms,
        "int8_ms": vs.b.median_ms,
        "latency_ratio": vs.ratio,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("int8", type=Path, help="the int8 .tflite")
    ap.add_argument("--float", dest="float_", type=Path, required=True, help="the float .tflite of the same model")
    ap.add_argument("--runs", type=int, default=200, help="timed runs of each file (interleaved)")
    args = ap.parse_args(argv)
    for path in (args.int8, args.float_):
        if not path.is_file():
            print(f"error: {path}: no such file (compile it first: see `make demo`)", file=sys.stderr)
            return 2
    s = summarize(args.int8, args.float_, args.runs)
    ratio = s["latency_ratio"]
    print(f"\nMNIST test split ({s['images']} images), LiteRT + XNNPACK on this host, 1 thread:")
    print(f"  top-1     float {s['float_top1']:.3f}   int8 {s['int8_top1']:.3f}   "
          f"({100 * (s['int8_top1'] - s['float_top1']):+.1f} points)")
    print(f"  size      float {s['float_bytes'] / 1e6:.2f} MB   int8 {s['int8_bytes'] / 1e6:.2f} MB   "
          f"(int8/float {s['int8_bytes'] / s['float_bytes']:.2f}x)")
    print(f"  latency   float {s['float_ms']:.3f} ms   int8 {s['int8_ms']:.3f} ms   (int8/float median ratio "
          f"{ratio.ratio:.2f}x, 95% CI [{ratio.ci[0]:.2f}, {ratio.ci[1]:.2f}], {args.runs} interleaved runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
