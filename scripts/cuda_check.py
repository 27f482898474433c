#!/usr/bin/env python3
"""Build a TVM CUDA module with edgec's lowering and, where a GPU exists, run and time it.

    python scripts/cuda_check.py [--out DIR] [--arch sm_90] [--size 64] [--runs 50] [--build-only]

Builds edgec's probe net (edgec/bench/probe.py: conv3x3 -> relu -> conv1x1) for TVM's CUDA
target {"kind": "cuda", "arch": ARCH} through edgec.lower.tvm (its CUDA Relax pipeline
schedules every kernel with dlight's default GPU rules). This works on any machine: no GPU
or driver is needed to build, and the library embeds the CUDA code.

Then, only if `edgec devices` finds a GPU (gpu0), it runs the library on the GPU, checks the
output against numpy, and times it with `edgec.bench.benchmark(..., device="gpu0")`. Without
one it says so and exits 0 after the build (exit 1 on a build failure or wrong numbers).
Prints one JSON line at the end: {"built": ..., "ran": ..., "max_abs_error": ..., "median_ms": ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def build(out: Path, arch: str, size: int) -> Path:
    import onnx_ir

    from edgec.bench.probe import probe_onnx_model
    from edgec.lower.tvm import lower_tvm
    from edgec.targets import Target, Tolerance

    target = Target(name=f"cuda-fp32-{arch}", arch="cuda", precision="fp32", formats=("tvm",), passes=(),
                    tvm_target={"kind": "cuda", "arch": arch}, tolerance=Tolerance(max_rel_error=1e-4))
    path = out / f"probe.cuda-{arch}.so"
    lower_tvm(onnx_ir.from_proto(probe_onnx_model(size)), target, path)
    return path


def embedded_cuda_kernels(path: Path) -> int:
    """How many __global__ kernels the library carries (its CUDA source is embedded)."""
    return path.read_bytes().count(b"__global__")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the library (default: a temp dir)")
    parser.add_argument("--arch", default="sm_90", help="CUDA compute capability (H100: sm_90, A100: sm_80)")
    parser.add_argument("--size", type=int, default=64, help="probe input height and width")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--build-only", action="store_true", help="do not try to run even if a GPU exists")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="edgec-cuda-"))
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    path = build(out, args.arch, args.size)
    report = {"built": str(path), "build_s": round(time.perf_counter() - t0, 2),
              "cuda_kernels": embedded_cuda_kernels(path), "ran": False}
    print(f"built {path} ({path.stat().st_size / 1024:.0f} KiB, {report['cuda_kernels']} CUDA kernels) "
          f"in {report['build_s']} s", file=sys.stderr)

    if not args.build_only:
        from edgec.bench.devices import cuda_status

        ok, why = cuda_status(0)
        if not ok:
            report["why_not_run"] = why
            print(f"not run: {why}", file=sys.stderr)
        else:
            import numpy as np

            from edgec.bench import benchmark
            from edgec.bench.probe import probe_input, probe_reference
            from edgec.runtimes.tvmrt import TVMRuntime

            x = probe_input(args.size)
            y = TVMRuntime(path, device="cuda").run([x])[0]
            err = float(np.abs(y - probe_reference(x)).max())
            res = benchmark(path, device="gpu0", runs=args.runs, warmup=10, inputs=[x])
            report.update(ran=True, device=why, max_abs_error=err, median_ms=res.stats.median_ms,
                          median_ci_ms=list(res.stats.median_ci_ms), p10_ms=res.stats.p10_ms,
                          p90_ms=res.stats.p90_ms)
            res.save(out / "cuda_bench.json")
            print(f"ran on {why}: max abs error {err:.2e}, median {res.stats.median_ms:.4f} ms "
                  f"[{res.stats.median_ci_ms[0]:.4f}, {res.stats.median_ci_ms[1]:.4f}]", file=sys.stderr)
            if err > 1e-3:
                print(json.dumps(report))
                return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
