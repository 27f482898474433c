"""Dense vs pruned MobileNets with XNNPACK's sparse kernels, on WebAssembly.

    .venv/bin/python benchmarks/bench_sparse.py                    # v1 and v2 at 224, node-wasm
    .venv/bin/python benchmarks/bench_sparse.py --devices node-wasm rk3588 --json out.json
    .venv/bin/python benchmarks/bench_sparse.py --quick             # v1 at 128, 90% only (~1 min)

For each zoo model (random weights at 224x224: latency does not depend on them), the dense
float TFLite artifact (arm64-fp32; the file is architecture-independent) is timed against
the same model pruned one-shot to 70/80/90% (unstructured and 4x1 blocks, 1x1 convs only,
classifier dense) and compiled for wasm-sparse. Each pair is timed interleaved (A B A B ...)
in one LiteRT.js process per device, so drift hits both alike; the table gives medians with
their 95% bootstrap intervals and the paired speedup dense/sparse with its interval.

Devices that are not reachable (a board behind a TVM RPC tracker, say) are skipped with the
reason. Native x86 XNNPACK never takes the sparse path, so `host` shows no speedup by design.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import edgec
from edgec import zoo
from edgec.bench import benchmark_vs
from edgec.bench.devices import status
from edgec.targets import load_registry
from edgec.training import pruning

REPO = Path(__file__).resolve().parent.parent
SPARSITIES = (0.7, 0.8, 0.9)
BLOCKS = ("1x1", "4x1")


def _compile(module, example, target: str, out: Path, name: str):
    formats = ("tflite",)
    return edgec.compile(module, example_inputs=example, target=target, out_dir=out, name=name, formats=formats)


def _row(model: str, sparsity: float, block: str, device: str, vs, sparse_art) -> dict:
    lowering = sparse_art.report["artifacts"][0]["lowering"]
    report = lowering["sparse"]
    blocks = [layer["xnnpack_block"] for layer in report["layers"] if layer["op"] == "Conv"]
    return {
        "model": model, "sparsity": sparsity, "block": block, "device": device,
        "dense_ms": vs.a.stats.median_ms, "dense_ci_ms": list(vs.a.stats.median_ci_ms),
        "sparse_ms": vs.b.stats.median_ms, "sparse_ci_ms": list(vs.b.stats.median_ci_ms),
        # speedup = median(dense) / median(sparse): the inverse of the paired ratio and its interval
        "speedup": 1 / vs.ratio.ratio, "speedup_ci": [1 / vs.ratio.ci[1], 1 / vs.ratio.ci[0]],
        "xnnpack_predicted": report["xnnpack_sparse_inference"], "xnnpack_block": max(set(blocks), key=blocks.count),
        "sparse_bytes": lowering["size_bytes"], "runs": vs.a.stats.n,
    }


def run(models, sparsities, blocks, devices, resolution: int, runs: int, warmup: int, out: Path) -> dict:
    registry = load_registry()
    reachable = {}
    for name in devices:
        st = status(registry.device(name), registry.path.parent)
        reachable[name] = st.reachable
        if not st.reachable:
            print(f"  skipping {name}: {st.why}", file=sys.stderr)
    rows = []
    for model in models:
        m = zoo.build(model, resolution=resolution)
        dense = _compile(m.module, m.example_inputs, "arm64-fp32", out, f"{model}_dense")
        for sparsity in sparsities:
            for block in blocks:
                pruned = copy.deepcopy(m.module)
                pruning.prune(pruned, sparsity, block, fc=False)
                tag = f"{model}_{int(sparsity * 100)}_{block}"
                sparse = _compile(pruned, m.example_inputs, "wasm-sparse", out, tag)
                for device in (d for d in devices if reachable[d]):
                    vs = benchmark_vs(dense.paths["tflite"], sparse.paths["tflite"], device=device, runs=runs,
                                      warmup=warmup)
                    row = _row(model, sparsity, block, device, vs, sparse)
                    rows.append(row)
                    print(f"  {model} {sparsity:.0%} {block} on {device}: dense {row['dense_ms']:.2f} ms, "
                          f"sparse {row['sparse_ms']:.2f} ms, speedup {row['speedup']:.2f}x "
                          f"[{row['speedup_ci'][0]:.2f}, {row['speedup_ci'][1]:.2f}]", flush=True)
    return {"resolution": resolution, "runs": runs, "warmup": warmup, "rows": rows,
            "devices": {d: reachable[d] for d in devices}, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def table(result: dict) -> str:
    lines = [f"MobileNets at {result['resolution']}x{result['resolution']}, LiteRT (XNNPACK), "
             f"{result['runs']} interleaved runs per artifact; medians [95% interval]",
             "",
             "| model | device | sparsity | block | XNNPACK sparse? (block) | dense ms | sparse ms | speedup |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(
            f"| {r['model']} | {r['device']} | {r['sparsity']:.0%} | {r['block']} | "
            f"{'yes' if r['xnnpack_predicted'] else 'no'} ({r['xnnpack_block']}) | "
            f"{r['dense_ms']:.2f} [{r['dense_ci_ms'][0]:.2f}, {r['dense_ci_ms'][1]:.2f}] | "
            f"{r['sparse_ms']:.2f} [{r['sparse_ci_ms'][0]:.2f}, {r['sparse_ci_ms'][1]:.2f}] | "
            f"{r['speedup']:.2f}x [{r['speedup_ci'][0]:.2f}, {r['speedup_ci'][1]:.2f}] |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet_v1", "mobilenet_v2"])
    parser.add_argument("--devices", nargs="+", default=["node-wasm"], help="devices from devices.yaml")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--quick", action="store_true", help="mobilenet_v1 at 128, 90% only, 12 runs")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "sparse.json")
    parser.add_argument("--out", type=Path, help="keep the artifacts here (default: a temporary folder)")
    args = parser.parse_args(argv)
    models, sparsities, resolution, runs = args.models, SPARSITIES, args.resolution, args.runs
    if args.quick:
        models, sparsities, resolution, runs = ["mobilenet_v1"], (0.9,), 128, 12
    with tempfile.TemporaryDirectory(prefix="edgec-bench-sparse-") as tmp:
        out = args.out or Path(tmp)
        result = run(models, sparsities, BLOCKS, args.devices, resolution, runs, args.warmup, out)
    result["quick"] = args.quick
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print("\n" + table(result))
    print(f"\nresult: {args.json}")
    return result


if __name__ == "__main__":
    main()
