"""Text encoders: compile time of a BERT-base-sized encoder, and BERT-tiny latency vs onnxruntime.

    .venv/bin/python benchmarks/bench_text_encoders.py [--skip-base] [--runs 200]

1. BERT-base-sized (12 layers, hidden 768, 12 heads, seq 128, random init from a
   transformers config): `edgec.compile` to x86_64-fp32 (TFLite and TVM, verified against
   torch); the report's per-stage seconds. The aim is under 60 s on the build machine.
2. BERT-tiny (2 layers, hidden 128, 2 heads, seq 128): exported once to ONNX; edgec compiles
   that file to TFLite, and LiteRT (XNNPACK) is timed against onnxruntime on the same ONNX,
   interleaved A B A B in one process, one thread each (`edgec bench A --vs B --threads 1`).

Needs the `models` extra (transformers). Writes benchmarks/results/text_encoders.json.
Slow (minutes): not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.text_encoders import build_encoder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "text_encoders.json"


def compile_bert_base(out: Path) -> dict:
    import edgec

    model, inputs = build_encoder("bert", layers=12, hidden=768, heads=12, seq=128, vocab=30522)
    t = time.perf_counter()
    art = edgec.compile(model, inputs, target="x86_64-fp32", out_dir=out, name="bert_base", samples=2,
                        log=lambda msg: print(f"  {msg}", flush=True))
    wall = time.perf_counter() - t
    verification = art.report["verification"]["artifacts"]
    return {
        "model": "BERT-base-sized encoder (12 layers, hidden 768, 12 heads, seq 128, vocab 30522)",
        "target": "x86_64-fp32",
        "wall_s": round(wall, 2),
        "timings_s": {k: round(v, 2) for k, v in art.report["timings"].items()},
        "max_rel_error_vs_torch": {f: v["vs_torch"]["max_rel_error"] for f, v in verification.items()},
    }


def tiny_latency(out: Path, runs: int) -> dict:
    import torch

    import edgec
    from edgec.bench import benchmark_vs

    model, inputs = build_encoder("bert", layers=2, hidden=128, heads=2, seq=128, vocab=30522)
    onnx_path = out / "bert_tiny.onnx"
    torch.onnx.export(model, inputs, dynamo=True, input_names=["input_ids", "attention_mask"]).save(str(onnx_path))
    art = edgec.compile(onnx_path, target="x86_64-fp32", out_dir=out, formats=["tflite"], name="bert_tiny")
    tflite = art.paths["tflite"]
    result = benchmark_vs(onnx_path, tflite, runs=runs, warmup=20, threads=1)
    lowering = art.report["artifacts"][0]["lowering"]
    return {
        "model": "BERT-tiny encoder (2 layers, hidden 128, 2 heads, seq 128)",
        "threads": 1,
        "runs": runs,
        "onnxruntime_median_ms": result.a.stats.median_ms,
        "litert_median_ms": result.b.stats.median_ms,
        "ratio_litert_over_onnxruntime": result.ratio.ratio,
        "ratio_ci": list(result.ratio.ci),
        "tflite_ops": lowering["ops"],
        "xnnpack": art.report["verification"]["artifacts"]["tflite"].get("xnnpack"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-base", action="store_true", help="skip the BERT-base compile-time run")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per runtime")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["host"] = {"machine": platform.machine(), "processor": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_base:
            print("BERT-base compile", flush=True)
            results["bert_base_compile"] = compile_bert_base(Path(tmp) / "base")
            print(json.dumps(results["bert_base_compile"], indent=2), flush=True)
        print("BERT-tiny latency", flush=True)
        results["bert_tiny_latency"] = tiny_latency(Path(tmp), args.runs)
        print(json.dumps(results["bert_tiny_latency"], indent=2), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
