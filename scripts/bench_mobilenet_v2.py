#!/usr/bin/env python3
"""Zoo MobileNet v2 (fp32, 224x224, random weights) on every runtime this machine has.

    python scripts/bench_mobilenet_v2.py [--out out/bench-mnv2] [--runs 50] [--warmup 10] [--threads N]

Compiles zoo:mobilenet_v2 for x86_64-fp32 (TFLite + TVM .so), writes the imported float graph
as ONNX, then times: host LiteRT (XNNPACK), host TVM (untuned llvm), host onnxruntime, and
LiteRT.js in Node (XNNPACK in wasm) where scripts/setup-wasm.sh has run. Prints a Markdown
table (median, 95% CI of the median, p10, p90, cv), writes each result JSON and one
distribution plot. Devices that are not reachable are listed with the reason instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build(out: Path) -> dict[str, Path]:
    import edgec
    from edgec.frontends import load_model
    from edgec.fsutil import atomic_write_bytes
    from edgec.ir import to_bytes

    art = edgec.compile("zoo:mobilenet_v2", target="x86_64-fp32", out_dir=out, verify=False)
    onnx_path = out / "mobilenet_v2.fp32.onnx"
    atomic_write_bytes(onnx_path, to_bytes(load_model("zoo:mobilenet_v2").model))
    return {"tflite": art.paths["tflite"], "tvm": art.paths["tvm"], "onnx": onnx_path}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench-mnv2"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    from edgec.bench import benchmark
    from edgec.bench.devices import status
    from edgec.bench.plots import plot_distribution
    from edgec.targets import load_registry

    args.out.mkdir(parents=True, exist_ok=True)
    files = build(args.out)
    reg = load_registry()
    plan = [("host", "tflite", "LiteRT (XNNPACK)"), ("host", "tvm", "TVM (llvm, untuned)"),
            ("host", "onnx", "onnxruntime"), ("node-wasm", "tflite", "LiteRT.js wasm (Node)")]
    rows, results, skipped = [], [], []
    for device, fmt, label in plan:
        st = status(reg.device(device), reg.path.parent)
        if not st.reachable:
            skipped.append(f"{device}: {st.why}")
            continue
        print(f"timing {label} on {device} ...", file=sys.stderr)
        res = benchmark(files[fmt], device=device, runs=args.runs, warmup=args.warmup, threads=args.threads)
        res.save(args.out / f"{device}-{fmt}.json")
        results.append(res)
        s = res.stats
        threads = res.runtime.get("threads_effective") or res.runtime.get("threads") or "default"
        rows.append(f"| {device} | {label} | {s.median_ms:.2f} | [{s.median_ci_ms[0]:.2f}, {s.median_ci_ms[1]:.2f}] "
                    f"| {s.p10_ms:.2f} | {s.p90_ms:.2f} | {s.cv:.1%} | {threads} |")
    plot_distribution(results, args.out / "mobilenet_v2.png")
    print("| device | runtime | median ms | 95% CI of median | p10 | p90 | cv | threads |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | --- |")
    print("\n".join(rows))
    for line in skipped:
        print(f"\nnot run: {line}")
    print(f"\n{args.runs} runs after {args.warmup} warm-up each; results and plot in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
