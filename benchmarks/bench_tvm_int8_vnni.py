"""TVM int8 on AVX-512 VNNI vs TVM fp32 and the portable TVM int8, MobileNet v2 224.

    .venv/bin/python benchmarks/bench_tvm_int8_vnni.py        # untuned: ~4 min compile + ~3 min timing
    .venv/bin/python benchmarks/bench_tvm_int8_vnni.py \
        --db x86_64-int8-vnni=DB_INT8 --db x86_64-fp32-avx512=DB_FP32   # adds the tuned pair

Compiles zoo:mobilenet_v2 (random weights, --calib random: latency only) for x86_64-fp32
(x86-64-v3), x86_64-fp32-avx512 (x86-64-v4: the same instruction-set level as the VNNI
target, so the fair fp32 baseline), x86_64-int8 (portable x86-64-v3: int8 x int8 convs, the
lowering before VNNI) and x86_64-int8-vnni (dense convs and Gemms on vpdpbusd,
edgec/lower/tvm/int8_dot.py), with the default CPU schedules. Checks that the VNNI library's
outputs are bit-identical to the portable one's and counts vpdpbusd in its disassembly, then
times pairs interleaved (A B A B, 1 thread). With `--db TARGET=DIR` for both the VNNI and
the avx512 target (databases from `edgec tune`), the tuned builds are timed as one more
pair. Needs a host with AVX-512 VNNI. Writes benchmarks/results/tvm_int8_vnni.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgec.bench.measure import benchmark_vs
from edgec.runtimes.tvmrt import TVMRuntime

REPO = Path(__file__).resolve().parent.parent
RESULT = REPO / "benchmarks" / "results" / "tvm_int8_vnni.json"
TARGETS = ("x86_64-fp32", "x86_64-fp32-avx512", "x86_64-int8", "x86_64-int8-vnni")
PAIRS = {  # name: (A, B); the ratio is median(B) / median(A)
    "portable int8 vs fp32": ("x86_64-int8", "x86_64-fp32"),
    "after: vnni int8 vs fp32-avx512": ("x86_64-int8-vnni", "x86_64-fp32-avx512"),
    "vnni int8 vs portable int8": ("x86_64-int8-vnni", "x86_64-int8"),
}
TUNED_PAIR = ("x86_64-int8-vnni", "x86_64-fp32-avx512")
RUNS, WARMUP, THREADS = 50, 10, 1


def compile_model(target: str, out: Path, db: Path | None = None) -> Path:
    cmd = [str(REPO / ".venv" / "bin" / "edgec"), "compile", "zoo:mobilenet_v2", "--target", target,
           "--format", "tvm", "-o", str(out)]
    if "int8" in target:
        cmd += ["--calib", "random"]
    if db is not None:
        cmd += ["--tuning-db", str(db)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out / f"mobilenet_v2.{target}.so"


def bit_identical(a: Path, b: Path, samples: int = 3) -> bool:
    ra, rb = TVMRuntime(a), TVMRuntime(b)
    rng = np.random.default_rng(0)
    for _ in range(samples):
        x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
        if not np.array_equal(ra.run([x])[0], rb.run([x])[0]):
            return False
    return True


def count_instruction(library: Path, mnemonic: str) -> int | None:
    if not shutil.which("objdump"):
        return None
    text = subprocess.run(["objdump", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    return sum(1 for line in text.splitlines() if f"\t{mnemonic}" in line)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", action="append", default=[], metavar="TARGET=DIR",
                        help=f"tuning database of {TUNED_PAIR[0]} and of {TUNED_PAIR[1]}")
    args = parser.parse_args()
    dbs = {k: Path(v) for k, v in (item.split("=", 1) for item in args.db)}
    if dbs and set(dbs) != set(TUNED_PAIR):
        parser.error(f"--db needs both {TUNED_PAIR[0]}=DIR and {TUNED_PAIR[1]}=DIR")
    with tempfile.TemporaryDirectory() as tmp:
        libs = {}
        for target in TARGETS:
            print(f"compiling mobilenet_v2 for {target}", flush=True)
            libs[target] = compile_model(target, Path(tmp) / target)
        pair_list = dict(PAIRS)
        for target, db in dbs.items():
            print(f"compiling mobilenet_v2 for {target} with {db}", flush=True)
            libs[f"tuned {target}"] = compile_model(target, Path(tmp) / f"tuned-{target}", db)
        if dbs:
            pair_list["tuned: vnni int8 vs fp32-avx512"] = tuple(f"tuned {t}" for t in TUNED_PAIR)
        identical = bit_identical(libs["x86_64-int8-vnni"], libs["x86_64-int8"])
        pairs = {}
        for name, (a, b) in pair_list.items():
            print(f"timing {name}", flush=True)
            vs = benchmark_vs(libs[a], libs[b], runs=RUNS, warmup=WARMUP, threads=THREADS)
            pairs[name] = {"a": a, "b": b, "median_ms_a": vs.a.stats.median_ms, "median_ms_b": vs.b.stats.median_ms,
                           "ratio_b_over_a": vs.ratio.to_json()}
            print(f"  {a} {vs.a.stats.median_ms:.1f} ms, {b} {vs.b.stats.median_ms:.1f} ms, "
                  f"ratio B/A {vs.ratio.ratio:.3f}", flush=True)
        result = {
            "model": "zoo:mobilenet_v2 (224x224, random weights, --calib random)",
            "device": "host, 1 thread, interleaved A B A B",
            "runs": RUNS, "warmup": WARMUP,
            "tuning": {t: str(db) for t, db in dbs.items()} or "none (default CPU schedules)",
            "vnni_outputs_bit_identical_to_portable_int8": identical,
            "vpdpbusd_instructions_in_vnni_library": count_instruction(libs["x86_64-int8-vnni"], "vpdpbusd"),
            "int8_over_fp32": {
                "portable (x86_64-int8 vs x86_64-fp32)": 1 / pairs["portable int8 vs fp32"]["ratio_b_over_a"]["ratio"],
                "after (x86_64-int8-vnni vs x86_64-fp32-avx512)":
                    1 / pairs["after: vnni int8 vs fp32-avx512"]["ratio_b_over_a"]["ratio"],
                **({"tuned (x86_64-int8-vnni vs x86_64-fp32-avx512)":
                    1 / pairs["tuned: vnni int8 vs fp32-avx512"]["ratio_b_over_a"]["ratio"]} if dbs else {}),
            },
            "pairs": pairs,
        }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["int8_over_fp32"], indent=2))
    print(f"wrote {RESULT}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
