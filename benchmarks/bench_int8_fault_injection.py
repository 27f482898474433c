"""Does int8 verification tell a wrong lowering from a right one? Each fault of
tests/lower/int8_lowering_faults.py (a wrong output scale, a wrong zero point, a transposed 3x3
filter, two channels' filter scales swapped, a doubled bias) is injected into the lowered int8
TFLite graph of a few models, and the file is checked as `compile` checks it: layer by layer
(edgec.faithfulness), in the verification child process. The unfaulted file of each model is
checked too: it must pass. The TVM lowering is checked the same way on its probe build
(edgec/lower/tvm/probe.py) with a wrong requantize kernel (zero point off by 3, multiplier off
by 25%: every integer conv/matmul layer it writes is wrong) and without.

    .venv/bin/python benchmarks/bench_int8_fault_injection.py

Columns: model, fault, caught (the check failed), the worst layer it named (a wrong output
scale also misleads the layers that read that tensor), the faulted layer, whether it fails
the check itself, and its agreement (fraction of elements within 1 LSB of the QDQ
reference fed the file's own inputs). Random calibration; the figures are about the check,
not about accuracy. Results: benchmarks/results/int8_fault_injection.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgec.faithfulness import MIN_LAYER_AGREEMENT, faithfulness_failures, layer_agreement
from edgec.frontends import load_model
from edgec.fsutil import atomic_write_bytes
from edgec.lower.tflite import build_flatbuffer
from edgec.lower.tvm import qdq as tvm_qdq
from edgec.lower.tvm.probe import build_probe
from edgec.passes import run_passes
from edgec.quantization import quantize_model
from edgec.runtimes.child import ChildRuntimes
from edgec.targets import get_target

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "lower"))
from int8_lowering_faults import FAULTS, faulted_tensor  # noqa: E402

# zoo models with two or more 3x3 CONV_2D layers and a FULLY_CONNECTED classifier.
MODELS = ("resnet18?resolution=32&num_classes=10", "mobilenet_v1?resolution=32&num_classes=10",
          "convfirst?resolution=32&num_classes=10")


def _quantized(spec: str, seed: int = 0):
    imported = load_model(f"zoo:{spec}")
    model, _ = run_passes(imported.model, list(get_target("x86_64-fp32").passes))
    shape = tuple(imported.model.graph.inputs[0].shape)
    rng = np.random.default_rng(seed)
    samples = [[rng.standard_normal(shape).astype(np.float32)] for _ in range(24)]
    qdq, _ = quantize_model(model, samples[:16])
    return qdq, samples[16:]


def _check(qdq, samples, work: Path, child: ChildRuntimes, fault: str | None) -> dict:
    data, ctx, _ = build_flatbuffer(qdq)
    expected = None
    if fault is not None:
        expected = faulted_tensor(ctx.graph, fault)
        FAULTS[fault](ctx.graph)
        data = ctx.graph.serialize()
    path = work / f"{fault or 'correct'}.tflite"
    atomic_write_bytes(path, data)
    quantized = ctx.quantized_values()
    tensor_map = {n: [h.tensor, list(h.perm)] for n, h in quantized.items()}
    layers = layer_agreement(qdq, tensor_map, samples, lambda s, t: child.intermediates(path, s, t))
    failures = faithfulness_failures(layers)
    named = re.search(r"layer '([^']+)'", failures[0]).group(1) if failures else None
    expected_value = None
    if expected is not None:  # the ONNX value whose tensor the fault changed
        expected_value = next((n for n, h in quantized.items() if ctx.graph.tensors[h.tensor].name == expected),
                              expected)
    row = {"fault": fault or "none (correct file)", "caught": bool(failures), "named_layer": named,
           "layers_checked": len(layers), "failing_layers": len(failures)}
    if fault is not None:
        row["faulted_layer"] = expected_value
        row["faulted_layer_fails"] = layers.get(expected_value, {}).get("agreement", 1.0) < MIN_LAYER_AGREEMENT
        row["faulted_layer_agreement"] = layers.get(expected_value, {}).get("agreement")
    else:
        row["worst_agreement"] = min((v["agreement"] for v in layers.values()), default=None)
    return row


def _requantize_with(fault: str | None):
    """The TVM requantize kernel, right or with `fault`."""
    real = tvm_qdq.requantize

    def faulty(acc, bias, multiplier, *, zero_point, **kwargs):
        if fault == "tvm_wrong_zero_point":
            zero_point += 3
        elif fault == "tvm_wrong_scale":
            from tvm import te
            multiplier = te.compute(multiplier.shape, lambda *i: multiplier(*i) * 1.25, name="faulty_multiplier")
        return real(acc, bias, multiplier, zero_point=zero_point, **kwargs)

    return real if fault is None else faulty


def _check_tvm(qdq, samples, work: Path, child: ChildRuntimes, fault: str | None) -> dict:
    real = tvm_qdq.requantize
    tvm_qdq.requantize = _requantize_with(fault)
    try:
        folder = work / f"tvm-{fault or 'correct'}"
        folder.mkdir()
        path, tensor_map = build_probe(qdq, get_target("x86_64-int8"), folder)
    finally:
        tvm_qdq.requantize = real
    probe = child.open(path)
    layers = layer_agreement(qdq, tensor_map, samples,
                             lambda batch, tensors: [{t: o[t] for t in tensors} for o in probe.run_all(batch)])
    failures = faithfulness_failures(layers)
    bad = [n for n, v in layers.items() if v["agreement"] < MIN_LAYER_AGREEMENT]
    row = {"fault": fault or "tvm: none (correct file)", "caught": bool(failures),
           "named_layer": re.search(r"layer '([^']+)'", failures[0]).group(1) if failures else None,
           "layers_checked": len(layers), "failing_layers": len(bad)}
    if fault is None:
        row["worst_agreement"] = min((v["agreement"] for v in layers.values()), default=None)
    else:
        row["faulted_layer"] = "every requantized layer"
        row["faulted_layer_fails"] = bool(bad)
        row["faulted_layer_agreement"] = min((layers[n]["agreement"] for n in bad), default=None)
    return row


TVM_FAULTS = ("tvm_wrong_scale", "tvm_wrong_zero_point")


def _table(result: dict) -> str:
    lines = ["# int8 verification: injected lowering faults", "",
             f"Measured {result['date']} at commit {result['commit']}. "
             f"Command: `.venv/bin/python benchmarks/bench_int8_fault_injection.py`.", "",
             "Each fault is injected into the lowered int8 TFLite graph; the file is then checked layer by layer "
             "as `compile` checks it (each layer fed the file's own input, held to 99% of elements within 1 LSB "
             "of the QDQ reference; TVM: on its probe build). The correct file of each model must pass.", "",
             "| model | format | fault | caught | worst layer named | faulted layer | faulted layer fails | its agreement |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        if "none" in r["fault"]:
            verdict = "rejected (wrong)" if r["caught"] else "passed (right)"
            lines.append(f"| {r['model']} | {r['format']} | {r['fault']} | {verdict} | {r['named_layer'] or '–'} | – | – | "
                         f"worst layer {r['worst_agreement']:.4f} |")
        else:
            agreement = r["faulted_layer_agreement"]
            lines.append(f"| {r['model']} | {r['format']} | {r['fault']} | {'yes' if r['caught'] else '**no**'} | "
                         f"{r['named_layer'] or '–'} | {r['faulted_layer']} | {'yes' if r['faulted_layer_fails'] else 'no'} | "
                         f"{'' if agreement is None else f'{agreement:.4f}'} |")
    faults = [r for r in result["rows"] if "none" not in r["fault"]]
    correct = [r for r in result["rows"] if "none" in r["fault"]]
    lines += ["", f"Caught: {sum(r['caught'] for r in faults)}/{len(faults)} faults; "
              f"correct files rejected: {sum(r['caught'] for r in correct)}/{len(correct)}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo specs")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    result = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "commit": commit, "rows": []}
    with tempfile.TemporaryDirectory(prefix="edgec-faults.") as tmp, ChildRuntimes() as child:
        for spec in args.models.split(","):
            qdq, samples = _quantized(spec)
            work = Path(tmp) / re.sub(r"\W", "_", spec)
            work.mkdir()
            for fault in [None, *sorted(FAULTS)]:
                row = {"model": spec, "format": "tflite", **_check(qdq, samples, work, child, fault)}
                result["rows"].append(row)
                print(row, flush=True)
            for fault in [None, *TVM_FAULTS]:
                row = {"model": spec, "format": "tvm", **_check_tvm(qdq, samples, work, child, fault)}
                result["rows"].append(row)
                print(row, flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "int8_fault_injection.json").write_text(json.dumps(result, indent=1) + "\n")
    table = _table(result)
    (args.results / "int8_fault_injection.md").write_text(table)
    print(table)
    faults = [r for r in result["rows"] if "none" not in r["fault"]]
    return 0 if all(r["caught"] for r in faults) and not any(
        r["caught"] for r in result["rows"] if "none" in r["fault"]) else 1


if __name__ == "__main__":
    sys.exit(main())
