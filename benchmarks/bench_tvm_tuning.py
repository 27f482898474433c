"""Tuned vs untuned TVM MobileNet v2 224 against LiteRT+XNNPACK, and a compile that reuses a database.

    .venv/bin/edgec tune zoo:mobilenet_v2 --target x86_64-fp32-avx512 --trials 4000 --minutes 25 --db DB
    .venv/bin/python benchmarks/bench_tvm_tuning.py DB [--target T] [--tuning-log LOG] [--also x86_64-fp32]

Compiles zoo:mobilenet_v2 (random weights) for the target twice: without a database (the
default CPU schedules) and with `--tuning-db DB` (timed: the second compile, which reuses
every task DB holds). Then times interleaved pairs (A B A B, 1 thread) with edgec's bench:
untuned TVM vs the LiteRT+XNNPACK .tflite, and tuned TVM vs the same .tflite; `--also`
adds the untuned module of other targets against the same .tflite (e.g. the portable
x86-64-v3 build). Writes benchmarks/results/tvm_tuning.json (or --json) with the ratios,
the tuning summary of the compile report (tasks tuned/untuned, estimated time shares) and
the tuning run's last progress line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgec.bench.measure import benchmark_vs

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "tvm_tuning.json"
RUNS, WARMUP, THREADS = 40, 8, 1


def compile_model(out: Path, target: str, db: Path | None, calib: str | None = None) -> tuple[dict, float]:
    cmd = [str(REPO / ".venv" / "bin" / "edgec"), "compile", "zoo:mobilenet_v2", "--target", target, "-o", str(out)]
    if db is not None:
        cmd += ["--format", "tvm", "--tuning-db", str(db)]
    if calib:
        cmd += ["--calib", calib]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    return json.loads((out / f"mobilenet_v2.{target}.report.json").read_text()), seconds


def pair(a: Path, b: Path, name: str) -> dict:
    print(f"timing {name}", flush=True)
    vs = benchmark_vs(a, b, runs=RUNS, warmup=WARMUP, threads=THREADS)
    print(f"  A {vs.a.stats.median_ms:.2f} ms, B {vs.b.stats.median_ms:.2f} ms, B/A {vs.ratio.ratio:.3f}", flush=True)
    return {"a": a.name, "b": b.name, "median_ms_a": vs.a.stats.median_ms, "median_ms_b": vs.b.stats.median_ms,
            "ratio_b_over_a": vs.ratio.to_json()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", type=Path, help="tuning database from edgec tune for --target")
    parser.add_argument("--target", default="x86_64-fp32-avx512")
    parser.add_argument("--calib", help="for an int8 target: --calib of both compiles (e.g. random)")
    parser.add_argument("--also", action="append", default=[], help="another target's untuned module vs the same .tflite")
    parser.add_argument("--tuning-log", type=Path, help="the edgec tune output, for its last progress line")
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args()
    target = args.target
    with tempfile.TemporaryDirectory() as tmp:
        print("compiling without a database", flush=True)
        untuned_report, untuned_s = compile_model(Path(tmp) / "untuned", target, None, args.calib)
        print("compiling with the tuning database", flush=True)
        tuned_report, tuned_s = compile_model(Path(tmp) / "tuned", target, args.db, args.calib)
        tflite = Path(tmp) / "untuned" / f"mobilenet_v2.{target}.tflite"
        untuned_so = Path(tmp) / "untuned" / f"mobilenet_v2.{target}.so"
        tuned_so = Path(tmp) / "tuned" / f"mobilenet_v2.{target}.so"
        pairs = {
            "untuned TVM vs LiteRT+XNNPACK": pair(tflite, untuned_so, "untuned TVM vs LiteRT"),
            "tuned TVM vs LiteRT+XNNPACK": pair(tflite, tuned_so, "tuned TVM vs LiteRT"),
            "tuned vs untuned TVM": pair(untuned_so, tuned_so, "tuned vs untuned TVM"),
        }
        for other in args.also:
            compile_model(Path(tmp) / other, other, None, args.calib)
            other_so = Path(tmp) / other / f"mobilenet_v2.{other}.so"
            pairs[f"untuned {other} TVM vs LiteRT+XNNPACK"] = pair(tflite, other_so, f"untuned {other} vs LiteRT")
    tvm_lowering = next(a["lowering"] for a in tuned_report["artifacts"] if a["format"] == "tvm")
    tuning = {k: v for k, v in tvm_lowering["tuning"].items() if k != "kernels"}
    tuning["kernels_top10"] = tvm_lowering["tuning"]["kernels"][:10]
    last_progress = None
    if args.tuning_log and args.tuning_log.exists():
        lines = [ln for ln in args.tuning_log.read_text().splitlines() if ln.startswith("task ")]
        last_progress = lines[-1] if lines else None
    result = {
        "model": f"zoo:mobilenet_v2 (224x224, random weights), {target}",
        "device": "host (2-core Xeon, shared with other jobs), 1 thread, interleaved A B A B",
        "runs": RUNS, "warmup": WARMUP,
        "tvm_over_litert": {
            "untuned": pairs["untuned TVM vs LiteRT+XNNPACK"]["ratio_b_over_a"]["ratio"],
            "tuned": pairs["tuned TVM vs LiteRT+XNNPACK"]["ratio_b_over_a"]["ratio"],
            **{f"untuned {other}": pairs[f"untuned {other} TVM vs LiteRT+XNNPACK"]["ratio_b_over_a"]["ratio"]
               for other in args.also},
        },
        "compile_with_database": {
            "seconds_wall": tuned_s, "lower_tvm_seconds": tuned_report["timings"].get("lower_tvm_s"),
            "seconds_wall_without_database_both_formats": untuned_s,
            "reused_every_task": tuning["untuned"] == 0,
        },
        "tuning": tuning,
        "tuning_last_progress": last_progress,
        "pairs": pairs,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["tvm_over_litert"], indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
