"""Compile every zoo model at its default size and tabulate compile time, artifact sizes and
the fraction of TFLite ops XNNPACK delegates.

    .venv/bin/python benchmarks/compile_zoo.py [--target arm64-fp32] [--models a,b]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import edgec
from edgec import zoo

REPO = Path(__file__).resolve().parent.parent


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="arm64-fp32")
    ap.add_argument("--models", default=",".join(zoo.names()))
    ap.add_argument("--calib", default="random", help="for integer targets")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            t = time.perf_counter()
            art = edgec.compile(f"zoo:{name}", target=args.target, out_dir=tmp,
                                calibration=args.calib if args.target.endswith(("int8", "int4")) else None)
            seconds = time.perf_counter() - t
            sizes = {a["format"]: a["size_bytes"] for a in art.report["artifacts"]}
            x = art.report["verification"]["artifacts"]["tflite"]["xnnpack"]
            rows.append({"model": name, "input": art.report["inputs"][0]["shape"], "compile_s": seconds,
                         "timings": art.report["timings"], "tflite_bytes": sizes["tflite"],
                         "tvm_bytes": sizes.get("tvm"), "xnnpack": f"{x['delegated']}/{x['nodes']}"})
            print(f"{name}: {seconds:.1f} s", flush=True)
    out = REPO / "benchmarks" / "results" / f"compile_zoo.{args.target}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))
    print(f"\n| model | input | compile s (import / passes / tflite / tvm / verify) | .tflite | .so | XNNPACK ops |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        t = r["timings"]
        parts = " / ".join(f"{t.get(k, 0):.1f}" for k in ("import_s", "passes_s", "lower_tflite_s", "lower_tvm_s", "verify_s"))
        print(f"| {r['model']} | {r['input']} | {r['compile_s']:.1f} ({parts}) | {r['tflite_bytes'] / 2**20:.2f} MiB | "
              f"{r['tvm_bytes'] / 2**20:.2f} MiB | {r['xnnpack']} |")


if __name__ == "__main__":
    main()
