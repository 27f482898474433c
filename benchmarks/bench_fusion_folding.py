"""VanillaNet activation folding, ConvFirst/MBConv block fusion, and the efficiency table, measured.

    .venv/bin/python benchmarks/bench_fusion_folding.py            # full sizes, ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_fusion_folding.py --quick    # small sizes, what the slow test runs

1. VanillaNet: the deep-training graph (lambda = 1, canonical passes only) against the deploy
   graph edgec's fold_activations makes of it, in LiteRT (XNNPACK) and in TVM. FLOPs ratio too.
2. Block fusion in TVM: one ConvFirst block and one MBConv block, unfused (TVM's default
   kernels), unfused with every kernel given the SAME tiled, vectorized schedule the fused
   block gets (the control: what fusion itself buys), and fused. Latency and peak workspace;
   LiteRT (XNNPACK, op by op: TFLite has no block fusion) alongside, for scale.
3. The efficiency table (`edgec analyze`) of the zoo's ConvFirst net, fused, with the unfused
   build's totals.

Timings interleave the variants round by round (machine noise hits all alike); every ratio is
median(candidate) / median(baseline). No MetaSchedule tuning: every TVM number is untuned.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import tvm

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgec.analyze import analyze  # noqa: E402
from edgec.frontends.torch_module import export_module  # noqa: E402
from edgec.ir import const_array, static_shape  # noqa: E402
from edgec.lower.tflite import lower_tflite  # noqa: E402
from edgec.lower.tvm import lower_tvm  # noqa: E402
from edgec.lower.tvm.fusion import tile_fused_block  # noqa: E402
from edgec.lower.tvm.layers import read_layers  # noqa: E402
from edgec.passes import run_passes  # noqa: E402
from edgec.runtimes.litert import LiteRTRuntime  # noqa: E402
from edgec.runtimes.tvmrt import TVMRuntime  # noqa: E402
from edgec.targets import get_target  # noqa: E402
from edgec.zoo import build  # noqa: E402
from edgec.zoo.convfirst import ConvFirstBlock  # noqa: E402
from edgec.zoo.mobilenet_v2 import InvertedResidual  # noqa: E402

FULL = {"vanillanet": dict(depth=9, width=0.25, resolution=224), "block_size": 56,
        "convfirst": dict(resolution=224), "rounds": 5, "per_round": 6}
QUICK = {"vanillanet": dict(depth=5, width=0.125, resolution=64), "block_size": 28,
         "convfirst": dict(resolution=96, width=0.5), "rounds": 3, "per_round": 3}


# ---------------------------------------------------------------- timing

def interleaved(runtimes: dict, inputs: list[np.ndarray], rounds: int, per_round: int,
                warmup: int = 2) -> dict[str, list[float]]:
    """Samples (ms) per runtime, taken round by round: each round times every runtime in turn."""
    for rt in runtimes.values():
        rt.set_inputs(inputs)
        for _ in range(warmup):
            rt.invoke()
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(rounds):
        for name, rt in runtimes.items():
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                rt.invoke()
                samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def med(samples: list[float]) -> float:
    return float(np.median(samples))


def ratio(samples: dict[str, list[float]], new: str, old: str) -> float:
    return med(samples[new]) / med(samples[old])


# ---------------------------------------------------------------- building

def export(module: torch.nn.Module, x: torch.Tensor):
    return export_module(module.eval(), (x,))


def recipe_without(target_name: str, pass_name: str):
    target = get_target(target_name)
    return dataclasses.replace(target, passes=tuple(p for p in target.passes if p != pass_name))


def conv_macs(model) -> int:
    total = 0
    for node in model.graph:
        if node.op_type == "Conv":
            total += math.prod(const_array(node.inputs[1]).shape) * math.prod(static_shape(node.outputs[0])[2:])
    return total


@tvm.transform.module_pass(opt_level=0, name="bench.TileEveryConvKernel")
def tile_every_conv_kernel(mod, _ctx):
    """The control: the fused block's tiled, vectorized schedule applied to each unfused kernel."""
    for gv, func in list(mod.functions.items()):
        if isinstance(func, tvm.tirx.PrimFunc) and "conv2d" in gv.name_hint:
            try:
                mod[gv] = tile_fused_block(func)[0]
            except (ValueError, RuntimeError) as exc:  # a kernel the schedule does not fit stays TVM's
                print(f"   (control: {gv.name_hint} kept TVM's schedule: {str(exc).splitlines()[0]})")
    return mod


# ---------------------------------------------------------------- 1. VanillaNet

def vanillanet_section(cfg: dict, out: Path) -> dict:
    zm = build("vanillanet", num_classes=1000, **cfg["vanillanet"])
    x = zm.example_inputs[0]
    graphs = {}
    for name, target in (("training", recipe_without("x86_64-fp32", "fold_activations")),
                         ("deploy", get_target("x86_64-fp32"))):
        model, _ = run_passes(export(zm.module, x), list(target.passes))
        graphs[name] = {"model": model, "convs": sum(n.op_type == "Conv" for n in model.graph),
                        "macs": conv_macs(model)}
        lower_tflite(model, target, out / f"vanillanet.{name}.tflite")
        lower_tvm(model, target, out / f"vanillanet.{name}.so")
    inputs = [x.numpy()]
    result = {"config": cfg["vanillanet"], "convs": {k: g["convs"] for k, g in graphs.items()},
              "macs": {k: g["macs"] for k, g in graphs.items()},
              "macs_ratio": graphs["deploy"]["macs"] / graphs["training"]["macs"]}
    for runtime_name, open_rt, suffix in (("litert", LiteRTRuntime, ".tflite"), ("tvm", TVMRuntime, ".so")):
        runtimes = {k: open_rt(out / f"vanillanet.{k}{suffix}") for k in graphs}
        outs = {k: rt.run(inputs)[0] for k, rt in runtimes.items()}
        samples = interleaved(runtimes, inputs, cfg["rounds"], cfg["per_round"])
        result[runtime_name] = {
            "training_ms": med(samples["training"]), "deploy_ms": med(samples["deploy"]),
            "ratio": ratio(samples, "deploy", "training"),
            "max_rel_diff": float(np.abs(outs["deploy"] - outs["training"]).max() / np.abs(outs["training"]).max()),
        }
    return result


# ---------------------------------------------------------------- 2. block fusion

def _blocks(size: int) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    convfirst = ConvFirstBlock(64, 64)  # 64 -> 256 -> 64 channels
    mbconv = InvertedResidual(24, 24, stride=1, expansion=6)  # 24 -> 144 -> 24 channels
    for block in (convfirst, mbconv):
        for m in block.modules():  # real BatchNorm statistics: every conv keeps a bias
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.bias.data.normal_(0, 0.2)
    return {"convfirst": (convfirst.eval(), torch.randn(1, 64, size, size)),
            "mbconv": (mbconv.eval(), torch.randn(1, 24, size, size))}


def block_fusion_section(cfg: dict, out: Path) -> dict:
    fused_target, plain_target = get_target("x86_64-fp32-fused"), get_target("x86_64-fp32")
    results = {}
    for name, (block, x) in _blocks(cfg["block_size"]).items():
        model, _ = run_passes(export(block, x), list(plain_target.passes))
        # Names unlike section 3's: a process keeps the first library dlopen'ed under a path.
        paths = {k: out / f"block_{name}.{k}.so" for k in ("unfused", "unfused_tiled", "fused")}
        lower_tvm(model, plain_target, paths["unfused"])
        lower_tvm(model, plain_target, paths["unfused_tiled"], extra_passes={"schedule": [tile_every_conv_kernel]})
        lower_tvm(model, fused_target, paths["fused"])
        lower_tflite(model, plain_target, out / f"block_{name}.tflite")
        runtimes = {k: TVMRuntime(p) for k, p in paths.items()}
        runtimes["litert"] = LiteRTRuntime(out / f"block_{name}.tflite")
        inputs = [x.numpy()]
        with torch.no_grad():
            expected = block(x).numpy()
        errors = {k: float(np.abs(rt.run(inputs)[0] - expected).max() / np.abs(expected).max())
                  for k, rt in runtimes.items()}
        samples = interleaved(runtimes, inputs, cfg["rounds"], cfg["per_round"])
        workspace = {k: read_layers(p)["workspace"] for k, p in paths.items()}
        results[name] = {
            "input": list(x.shape),
            "ms": {k: med(s) for k, s in samples.items()},
            "fused_vs_unfused": ratio(samples, "fused", "unfused"),
            "fused_vs_unfused_tiled": ratio(samples, "fused", "unfused_tiled"),
            "fused_vs_litert": ratio(samples, "fused", "litert"),
            "workspace": workspace,
            "workspace_ratio": workspace["fused"]["peak_bytes"] / workspace["unfused"]["peak_bytes"],
            "max_rel_error_vs_torch": errors,
        }
    return results


# ---------------------------------------------------------------- 3. efficiency table

def convfirst_efficiency_section(cfg: dict, out: Path) -> dict:
    zm = build("convfirst", num_classes=1000, **cfg["convfirst"])
    x = zm.example_inputs[0]
    reports = {}
    for name, target in (("fused", get_target("x86_64-fp32-fused")), ("unfused", get_target("x86_64-fp32"))):
        model, _ = run_passes(export(zm.module, x), list(target.passes))
        lower_tvm(model, target, out / f"convfirst.{name}.so")
        if name == "fused":
            lower_tflite(model, target, out / "convfirst.tflite")
        reports[name] = analyze(out / f"convfirst.{name}.so", repeat=cfg["rounds"] * cfg["per_round"],
                                json_path=out / f"convfirst.{name}.analyze.json",
                                plot_path=out / f"convfirst.{name}.efficiency.png")
    litert = LiteRTRuntime(out / "convfirst.tflite").time([x.numpy()], warmup=3,
                                                          repeat=cfg["rounds"] * cfg["per_round"])
    return {"config": cfg["convfirst"], "fused": reports["fused"],
            "unfused_totals": reports["unfused"]["totals"], "litert_ms": litert.median_ms,
            "plot": str(out / "convfirst.fused.efficiency.png")}


# ---------------------------------------------------------------- report

def print_report(r: dict) -> None:
    v = r["vanillanet"]
    print(f"\n1. VanillaNet {v['config']}: convs {v['convs']['training']} -> {v['convs']['deploy']}, "
          f"MACs ratio {v['macs_ratio']:.2f}")
    for rt in ("litert", "tvm"):
        e = v[rt]
        print(f"   {rt:6s} training {e['training_ms']:9.2f} ms  deploy {e['deploy_ms']:9.2f} ms  "
              f"deploy/training {e['ratio']:.2f}  (outputs differ by {e['max_rel_diff']:.1e} rel)")
    print("\n2. Block fusion in TVM (untuned; LiteRT/XNNPACK op by op for scale)")
    for name, b in r["blocks"].items():
        ms, ws = b["ms"], b["workspace"]
        print(f"   {name} {b['input']}: unfused {ms['unfused']:.2f} ms, unfused+same schedule "
              f"{ms['unfused_tiled']:.2f} ms, fused {ms['fused']:.2f} ms, LiteRT {ms['litert']:.3f} ms")
        print(f"     fused/unfused {b['fused_vs_unfused']:.2f}   fused/unfused+same schedule "
              f"{b['fused_vs_unfused_tiled']:.2f}   fused/LiteRT {b['fused_vs_litert']:.1f}")
        print(f"     peak workspace {ws['unfused']['peak_bytes'] / 1024:.0f} KiB -> {ws['fused']['peak_bytes'] / 1024:.0f} KiB "
              f"({b['workspace_ratio']:.2f}x)")
    c = r["convfirst"]
    f, u = c["fused"]["totals"], c["unfused_totals"]
    m = c["fused"]["machine"]
    print(f"\n3. ConvFirst net {c['config']} efficiency (peak {m['gflops_per_s']:.1f} GFLOP/s, "
          f"{m['gbytes_per_s']:.1f} GB/s, {m['threads']} thread)")
    print(f"   {'#':>3} {'kernel':28s} {'MFLOP':>8} {'KiB':>8} {'ms':>8} {'GFLOP/s':>8} {'eff':>6} {'FLOP/B':>7} bound")
    for row in c["fused"]["layers"]:
        print(f"   {row['index']:3d} {row['name'][:28]:28s} {row['flops'] / 1e6:8.2f} {row['bytes'] / 1024:8.1f} "
              f"{row['time_ms']:8.3f} {row['gflops_per_s']:8.2f} {row['efficiency']:6.1%} "
              f"{row['flops_per_byte']:7.1f} {row['bound']}")
    print(f"   fused:   {f['model_ms']:.2f} ms, {f['efficiency']:.1%} of peak, {f['kernels']} kernels")
    print(f"   unfused: {u['model_ms']:.2f} ms, {u['efficiency']:.1%} of peak, {u['kernels']} kernels; "
          f"fused/unfused {f['model_ms'] / u['model_ms']:.2f}; LiteRT {c['litert_ms']:.2f} ms")
    print(f"   plot: {c['plot']}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (the slow test)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "fusion_folding.json")
    parser.add_argument("--out", type=Path, default=None, help="keep the artifacts and plots here")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        report = {"quick": args.quick, "tvm_threads": None, "tuning": "none (untuned TVM; no MetaSchedule)"}
        report["vanillanet"] = vanillanet_section(cfg, out)
        report["blocks"] = block_fusion_section(cfg, out)
        report["convfirst"] = convfirst_efficiency_section(cfg, out)
        report["tvm_threads"] = report["convfirst"]["fused"]["machine"]["threads"]
        report["seconds"] = time.perf_counter() - started
        args.json.parent.mkdir(parents=True, exist_ok=True)
        plot = args.json.with_name(args.json.stem + "_convfirst_efficiency.png")
        plot.write_bytes(Path(report["convfirst"]["plot"]).read_bytes())
        report["convfirst"]["plot"] = str(plot)
        print_report(report)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.json} ({report['seconds']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
