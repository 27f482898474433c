"""TVM int8 on AVX-512 VNNI vs TVM fp32 and the portable TVM int8, MobileNet v2 224, untuned.

    .venv/bin/python benchmarks/bench_tvm_int8_vnni.py        # ~4 min compile + ~2 min timing

Compiles zoo:mobilenet_v2 (random weights, --calib random: latency only) for x86_64-fp32,
x86_64-int8 (portable x86-64-v3: int8 x int8 convs, the lowering before VNNI) and
x86_64-int8-vnni (dense convs on vpdpbusd, edgec/lower/tvm/int8_dot.py), with the default
CPU schedules (no tuning database). Checks that the VNNI library's outputs are bit-identical
to the portable one's and counts vpdpbusd in its disassembly, then times pairs interleaved
(A B A B, 1 thread): int8 vs fp32 before (portable) and after (VNNI), and VNNI vs portable.
Needs a host with AVX-512 VNNI. Writes benchmarks/results/tvm_int8_vnni.json.
"""

from __future__ import annotations

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
TARGETS = ("x86_64-fp32", "x86_64-int8", "x86_64-int8-vnni")
PAIRS = {  # name: (A, B); the ratio is median(B) / median(A)
    "before: portable int8 vs fp32": ("x86_64-int8", "x86_64-fp32"),
    "after: vnni int8 vs fp32": ("x86_64-int8-vnni", "x86_64-fp32"),
    "vnni int8 vs portable int8": ("x86_64-int8-vnni", "x86_64-int8"),
}
RUNS, WARMUP, THREADS = 50, 10, 1


def compile_model(target: str, out: Path) -> Path:
    cmd = [str(REPO / ".venv" / "bin" / "edgec"), "compile", "zoo:mobilenet_v2", "--target", target,
           "--format", "tvm", "-o", str(out)]
    if "int8" in target:
        cmd += ["--calib", "random"]
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
    with tempfile.TemporaryDirectory() as tmp:
        libs = {}
        for target in TARGETS:
            print(f"compiling mobilenet_v2 for {target}", flush=True)
            libs[target] = compile_model(target, Path(tmp) / target)
        identical = bit_identical(libs["x86_64-int8-vnni"], libs["x86_64-int8"])
        pairs = {}
        for name, (a, b) in PAIRS.items():
            print(f"timing {name}", flush=True)
            vs = benchmark_vs(libs[a], libs[b], runs=RUNS, warmup=WARMUP, threads=THREADS)
            pairs[name] = {"a": a, "b": b, "median_ms_a": vs.a.stats.median_ms, "median_ms_b": vs.b.stats.median_ms,
                           "ratio_b_over_a": vs.ratio.to_json()}
            print(f"  {a} {vs.a.stats.median_ms:.1f} ms, {b} {vs.b.stats.median_ms:.1f} ms, "
                  f"ratio B/A {vs.ratio.ratio:.3f}", flush=True)
        result = {
            "model": "zoo:mobilenet_v2 (224x224, random weights, --calib random)",
            "device": "host, 1 thread, interleaved A B A B",
            "runs": RUNS, "warmup": WARMUP, "tuning": "none (default CPU schedules)",
            "vnni_outputs_bit_identical_to_portable_int8": identical,
            "vpdpbusd_instructions_in_vnni_library": count_instruction(libs["x86_64-int8-vnni"], "vpdpbusd"),
            "int8_over_fp32": {
                "before (x86_64-int8)": 1 / pairs["before: portable int8 vs fp32"]["ratio_b_over_a"]["ratio"],
                "after (x86_64-int8-vnni)": 1 / pairs["after: vnni int8 vs fp32"]["ratio_b_over_a"]["ratio"],
            },
            "pairs": pairs,
        }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["int8_over_fp32"], indent=2))
    print(f"wrote {RESULT}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
