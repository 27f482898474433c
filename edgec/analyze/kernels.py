"""`edgec analyze`: where the time goes, kernel by kernel, and how far each runs below peak.

Lavin (2024) writes latency as arithmetic complexity / computational efficiency and shows that
cheap layers (depthwise, 1x1) run far below the machine's peak because they are bound by
memory traffic. This report measures both factors on a built artifact:

    layer table (FLOPs, bytes per kernel; written by lower_tvm)   edgec/lower/tvm/layers.py
    + per-kernel time in the VM on this machine                   edgec/analyze/timing.py
    + the machine's measured peak FLOP/s and memory bandwidth     edgec/analyze/peak.py
    = efficiency (achieved / peak), arithmetic intensity, the roofline's bound for it, and the
      waterline: which kernels sit under the memory slope         (JSON, table, PNG)

A fused block (edgec/lower/tvm/fusion.py) is one kernel, so it is one row with the FLOPs of
all its layers.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import numpy as np

from edgec.analyze.peak import MachinePeak, measure_peak
from edgec.analyze.timing import time_kernels
from edgec.errors import EdgecError
from edgec.fsutil import atomic_write_text

DEVICES = ("host",)


def analyze(artifact: str | Path, device: str = "host", *, warmup: int = 3, repeat: int = 20,
            json_path: str | Path | None = None, plot_path: str | Path | None = None,
            peak: MachinePeak | None = None) -> dict:
    """Measure `artifact` (a TVM .so from edgec) on `device`; return the report (see module doc)."""
    from edgec.lower.tvm.layers import layers_path, read_layers

    path = Path(artifact)
    if device not in DEVICES:
        raise EdgecError(f"edgec analyze measures on this machine only (--device host); got '{device}'")
    if not path.exists():
        raise EdgecError(f"{path}: no such artifact")
    if path.suffix != ".so":
        raise EdgecError(
            f"{path}: edgec analyze times each kernel inside Apache TVM's VM; LiteRT's Python API has no "
            "per-operator timing. Analyze the .so edgec built for the same target (formats: [tflite, tvm])")
    table = read_layers(path)
    if table is None:
        raise EdgecError(f"{path}: no layer table ({layers_path(path).name}) beside it; rebuild the "
                         "artifact with this edgec, which writes one")

    layers = table["layers"]
    samples, whole_ms, threads = time_kernels(path, [r["symbol"] for r in layers], warmup, repeat)
    peak = peak or measure_peak(threads)
    times = [float(np.median(s)) for s in samples]
    kernel_total = sum(times)
    rows = [_row(layer, ms, kernel_total, peak) for layer, ms in zip(layers, times)]
    flops = sum(r["flops"] for r in rows)
    model_ms = float(np.median(whole_ms))
    report = {
        "artifact": str(path),
        "device": device,
        "host": {"machine": platform.machine(), "processor": platform.processor() or platform.machine()},
        "machine": peak.as_dict(),
        "repeat": repeat,
        "layers": rows,
        "totals": {
            "flops": flops,
            "bytes": sum(r["bytes"] for r in rows),
            "kernels": len(rows),
            "fused_blocks": sum(r["kind"] != "op" for r in rows),
            "model_ms": model_ms,
            "kernel_sum_ms": kernel_total,
            "gflops_per_s": flops / model_ms / 1e6 if model_ms else 0.0,
            "efficiency": flops / (model_ms / 1e3) / peak.flops_per_s if model_ms else 0.0,
            "memory_bound_time_share": sum(r["time_share"] for r in rows if r["bound"] == "memory"),
        },
        "workspace": table.get("workspace", {}),
        "note": ("model_ms is the whole model timed without instrumentation; kernel_sum_ms adds the "
                 "per-kernel medians taken with the VM instrument (a few microseconds each)"),
    }
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(report, indent=1))
    if plot_path is not None:
        from edgec.analyze.plot import plot_efficiency

        plot_efficiency(report, plot_path)
    return report


def _row(layer: dict, ms: float, total_ms: float, peak: MachinePeak) -> dict:
    seconds = ms / 1e3
    achieved = layer["flops"] / seconds if seconds > 0 else 0.0
    intensity = layer["flops"] / layer["bytes"] if layer["bytes"] else 0.0
    attainable = peak.attainable(intensity)
    return {
        "index": layer["index"],
        "name": display_name(layer["symbol"], layer["kind"]),
        "symbol": layer["symbol"],
        "kind": layer["kind"],
        "output_shape": layer["output_shape"],
        "flops": layer["flops"],
        "bytes": layer["bytes"],
        "scratch_bytes": layer["scratch_bytes"],
        "time_ms": ms,
        "time_share": ms / total_ms if total_ms else 0.0,
        "gflops_per_s": achieved / 1e9,
        "efficiency": achieved / peak.flops_per_s,
        "flops_per_byte": intensity,
        "attainable_gflops_per_s": attainable / 1e9,
        "roofline_efficiency": achieved / attainable if attainable else 0.0,
        "bound": "memory" if intensity < peak.ridge_intensity else "compute",
    }


def display_name(symbol: str, kind: str) -> str:
    """'convfirst_block_residual' for a fused block; 'conv2d+add+sigmoid+multiply' for
    fused_conv2d21_add17_tir_sigmoid7_multiply7 (TVM's numbering and prefixes dropped)."""
    if kind != "op":
        return kind
    parts = [re.sub(r"\d+$", "", p) for p in symbol.removeprefix("fused_").split("_") if p != "tir"]
    return "+".join(p for p in parts if p) or symbol
