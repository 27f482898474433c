"""The compile pipeline, top to bottom: shapes -> passes -> lower -> verify -> publish.

Artifacts are first written into a staging folder inside the output folder; only when every
lowering and the verification succeed are they moved into place, so a failed compile leaves
nothing behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx_ir as ir

from edgec import __version__
from edgec.artifact import SUFFIX, Artifact, FloatIO
from edgec.errors import EdgecError, VerificationError
from edgec.frontends import ImportedModel
from edgec.frontends.shapes import InputShapes
from edgec.fsutil import atomic_write_text, staging_folder
from edgec.ir import clone, input_specs, sample_inputs
from edgec.lower.tflite.rank_lift import lift_ranks
from edgec.passes import fix_input_shapes, run_passes
from edgec.quantization.layer_report import layer_sqnr
from edgec.runtimes.child import ChildCrash, ChildRuntimes, IsolatedRuntime
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.runtimes.placement import run_all, runs_on_this_host, verification_runtime
from edgec.targets import Target
from edgec.faithfulness import faithfulness_failures, layer_agreement
from edgec.faithfulness import summary as layer_summary
from edgec.verify import (accuracy_failures, accuracy_summary, compare_outputs, drift_failures, json_safe,
                          lsb_agreement, lsb_failures, tolerance_failures)

Log = Callable[[str], None]


def _lowerings():
    from edgec.lower.tflite import lower_tflite
    from edgec.lower.tvm import lower_tvm

    return {"tflite": lower_tflite, "tvm": lower_tvm}


@dataclasses.dataclass
class QuantizeRequest:
    """Calibration for integer targets; ignored by float ones."""

    calibration: Any = None  # path, array, iterable, CalibrationSet, or "random"
    method: str | None = None  # None: the target's default
    percentile: float | None = None
    preprocess: str | None = None
    limit: int | None = None
    equalization: bool | None = None  # None: the target's default
    bias_correction: bool | None = None
    # Greedy mixed precision under this loss: int4 targets choose int4 layers
    # (quantization/sensitivity.py), int8 targets float fallback (quantization/mixed_precision.py).
    accuracy_budget: float | None = None
    fallback_precision: str = "float"  # int8 targets: what the budget moves sensitive layers to (or "int16")
    # A prepared model's edgec.training.qat.QATDeployment: its learned ranges replace calibration.
    qat: Any = None


def compile_imported(
    imported: ImportedModel,
    target: Target,
    out_dir: str | Path,
    *,
    input_shapes: InputShapes | None = None,
    formats: tuple[str, ...] | None = None,
    quantize: QuantizeRequest | None = None,
    verify: bool = True,
    samples: int = 4,
    log: Log = lambda msg: None,
    timings: dict[str, float] | None = None,
) -> Artifact:
    timings = dict(timings or {})  # seeded by the caller with e.g. import_s
    out_dir = Path(out_dir)
    formats = formats or target.formats
    for fmt in formats:
        if fmt not in target.formats:
            raise EdgecError(f"target '{target.name}' does not produce '{fmt}' (it makes {', '.join(target.formats)})")

    model = fix_input_shapes(imported.model, input_shapes or {})
    reference_model = clone(model)  # the float graph as imported: what every artifact must compute
    prepared = prepare_for_lowering(model, target, formats, quantize, log, timings)
    model, float_model, pass_records = prepared.model, prepared.float_model, prepared.pass_records
    quant_info, calib = prepared.quant_info, prepared.calibration
    inputs = [sample_inputs(reference_model, seed=i) for i in range(samples)]
    if imported.example_inputs is not None:
        inputs[0] = [np.asarray(a, dtype=s[2]) for a, s in zip(imported.example_inputs, input_specs(reference_model))]
    if target.is_integer:
        ranges = quant_info.pop("ranges")
        if calib is not None and not calib.is_random:
            # Real data says more than random inputs about a quantized model (top-1 agreement above all).
            inputs = calib.samples[-samples:]

    with staging_folder(out_dir, prefix=f".{imported.name}.{target.name}.") as staging:
        lowered = {}
        lowerings = _lowerings()
        for fmt in formats:
            log(f"lowering to {fmt}")
            t = time.perf_counter()
            path = staging / f"{imported.name}.{target.name}{SUFFIX[fmt]}"
            info = lowerings[fmt](model, target, path)
            timings[f"lower_{fmt}_s"] = time.perf_counter() - t
            lowered[fmt] = (path, info)

        verification = None
        if verify:
            log("verifying against the float reference")
            t = time.perf_counter()
            staged = {f: p for f, (p, _) in lowered.items()}
            # The accuracy budget is held on real calibration data only (random inputs say little).
            budget = (quantize or QuantizeRequest()).accuracy_budget if target.is_integer else None
            real_data = calib is not None and not calib.is_random if target.is_integer else False
            verification = _verify(imported, inputs, reference_model, model if target.is_integer else None,
                                   quant_info, target, staged, {f: i for f, (_, i) in lowered.items()},
                                   accuracy=(budget, real_data))
            if quant_info is not None:
                _merge_layer_figures(quant_info, layer_sqnr(float_model, model, inputs, ranges))
            timings["verify_s"] = time.perf_counter() - t

        paths = _publish(staging, out_dir, lowered)

    timings["total_s"] = sum(timings.values())
    report = _report(imported, target, model, reference_model, pass_records, lowered, paths, verification,
                     timings, quant_info)
    report_path = out_dir / f"{imported.name}.{target.name}.report.json"
    atomic_write_text(report_path, json.dumps(json_safe(report), indent=2))
    return Artifact(target=target, paths={f: p for f, p in paths.items() if f in formats}, report=report,
                    report_path=report_path)


@dataclasses.dataclass
class Prepared:
    model: ir.Model              # what the lowerings receive (QDQ-annotated for integer targets)
    float_model: ir.Model        # after the passes, before quantization
    pass_records: list
    quant_info: dict | None
    calibration: Any


def prepare_for_lowering(model: ir.Model, target: Target, formats, quantize: QuantizeRequest | None, log: Log,
                         timings: dict[str, float] | None = None) -> Prepared:
    """The graph the lowerings receive: the target's passes, then (integer targets) quantization.
    Shared by compile and tune, so tuning sees exactly the kernels a compile builds."""
    timings = timings if timings is not None else {}
    t = time.perf_counter()
    log(f"running {len(target.passes)} passes")
    model, pass_records = run_passes(model, list(target.passes), on_progress=log)
    timings["passes_s"] = time.perf_counter() - t
    if target.is_integer and "tflite" in formats:
        # TFLite's convolutions and pools are 2-D: 1-D/3-D ones become 2-D ones between Reshapes
        # (exact in float) before quantizing, so the QDQ graph every artifact is checked against
        # has the ops the file will have (a float graph is lifted inside the TFLite lowering).
        model = lift_ranks(model)
    float_model, quant_info, calib = model, None, None
    if target.is_integer:
        t = time.perf_counter()
        model, quant_info, calib = _quantize(model, target, quantize or QuantizeRequest(), log)
        timings["quantize_s"] = time.perf_counter() - t
    return Prepared(model, float_model, pass_records, quant_info, calib)


def _quantize(model: ir.Model, target: Target, request: QuantizeRequest, log: Log):
    """Calibrate and insert QDQ, with the accuracy tools the target enables, each measured:
    the output SQNR vs float with the tool and without it goes into the report."""
    from edgec.passes import get_pass
    from edgec.quantization import quantize_model, quantized_tensor_names
    from edgec.quantization.calibration import collect_statistics, load_calibration
    from edgec.quantization.mixed_precision import assignment_options, choose_precisions
    from edgec.quantization.sensitivity import choose_int4_layers

    if request.qat is not None:
        return _quantize_with_qat_ranges(model, target, request, log)
    q = target.quantization
    equalize = q.equalization if request.equalization is None else request.equalization
    correct_bias = q.bias_correction if request.bias_correction is None else request.bias_correction
    data = load_calibration(request.calibration, model, preprocess=request.preprocess, limit=request.limit)
    method = request.method or q.method
    options = dict(method=method, percentile=request.percentile or q.percentile, weight_bits=8)
    evaluation = data.samples[-4:]

    float_model, tools = model, {}
    if equalize:
        cle = get_pass("cross_layer_equalization")
        float_model = cle(clone(model)).model
        tools["cross_layer_equalization"] = {"enabled": True, "details": "; ".join(cle.details),
                                             "refusals": [r.as_dict() for r in cle.refusals]}
    log(f"calibrating on {len(data)} samples ({method})")
    progress = lambda phase, done, total: log(f"{phase}: {done}/{total}")  # noqa: E731
    # Only the tensors the quantizer reads (faster), unless a float-fallback search tries others.
    searching = q.weight_bits != 4 and request.accuracy_budget is not None
    observed = None if searching else quantized_tensor_names(float_model)
    statistics = collect_statistics(float_model, data, method=method, percentile=options["percentile"],
                                    progress=progress, tensors=observed)
    mixed = None
    if q.weight_bits == 4:
        # W4A8: which layers get int4 weights (all but the ends, or greedily under a budget).
        mixed = choose_int4_layers(float_model, data, statistics, request.accuracy_budget, progress=progress)
        options["node_weight_bits"] = mixed["bits"]
    elif request.accuracy_budget is not None:
        # int8: the layers whose rounding costs most go float (or 16x8) until the model is within budget.
        log(f"choosing {request.fallback_precision} layers under an accuracy budget of {request.accuracy_budget}")
        mixed = choose_precisions(float_model, data, statistics, request.accuracy_budget,
                                  fallback=request.fallback_precision, bias_correction=correct_bias, progress=progress)
        options.update(assignment_options(frozenset(mixed["nodes"]), request.fallback_precision))
    qdq, info = quantize_model(float_model, data, bias_correction=correct_bias, statistics=statistics, **options)
    info.pop("statistics")
    if mixed is not None:
        info["mixed_precision"] = mixed
    # The float outputs every variant is scored against, computed once.
    float_runtime = OnnxRuntime.from_ir(model, optimize=False)
    float_outputs = [float_runtime.run(x) for x in evaluation]
    names = [v.name for v in model.graph.outputs]

    def output_sqnr(qdq_model: ir.Model) -> float:
        rt = OnnxRuntime.from_ir(qdq_model, optimize=False)
        return compare_outputs([rt.run(x) for x in evaluation], float_outputs, names)["sqnr_db"]

    sqnr = output_sqnr(qdq)
    if correct_bias:
        without, _ = quantize_model(float_model, data, bias_correction=False, statistics=statistics, **options)
        tools["bias_correction"] = {"enabled": True, "sqnr_db": sqnr, "sqnr_db_without": output_sqnr(without)}
    else:
        tools["bias_correction"] = {"enabled": False}
    if equalize:
        log("measuring cross-layer equalization")
        # The un-equalized graph's statistics follow from the equalized one's (minmax): no second calibration.
        without, _ = quantize_model(model, data, bias_correction=correct_bias,
                                    statistics=statistics.with_channels_scaled(cle.channel_scales), **options)
        tools["cross_layer_equalization"].update(sqnr_db=sqnr, sqnr_db_without=output_sqnr(without))
    else:
        tools["cross_layer_equalization"] = {"enabled": False}
    info["accuracy_tools"] = tools
    if data.is_random:
        info["accuracy"] = "unknown: calibrated on random inputs (--calib random); latency work only"
    return qdq, info, data


def _quantize_with_qat_ranges(model: ir.Model, target: Target, request: QuantizeRequest, log: Log):
    """Insert QDQ with the ranges a QAT-prepared model learned: no calibration. Equalization and
    bias correction stay off: both change the weights the model was trained to tolerate."""
    from edgec.errors import PassError
    from edgec.passes.quantize import QuantizeOptions, QuantizeQDQ
    from edgec.quantization.calibration import load_calibration

    qat = request.qat
    if qat.weight_bits != target.quantization.weight_bits:
        raise EdgecError(f"the model was QAT-trained for {qat.weight_bits}-bit weights but target '{target.name}' "
                         f"deploys {target.quantization.weight_bits}-bit ones; compile for a target with "
                         f"{qat.weight_bits}-bit weights, or qat.prepare for this one")
    log("quantizing with the ranges learned by QAT (no calibration)")
    qpass = QuantizeQDQ(QuantizeOptions(ranges=dict(qat.ranges), weight_bits=qat.weight_bits,
                                        node_weight_bits=dict(qat.node_weight_bits)))
    try:
        qdq = qpass(clone(model)).model
    except PassError as exc:
        raise EdgecError(f"the QAT ranges do not fit the exported graph ({exc}); was the model changed "
                         "after qat.prepare?") from None
    unused = sorted(set(qat.ranges) - set(qpass.details["activations"]))
    if unused:
        raise EdgecError(f"the QAT ranges name {len(unused)} tensor(s) the exported graph does not quantize, "
                         f"e.g. '{unused[0]}'; was the model changed after qat.prepare?")
    # Calibration data, when given anyway, only supplies real samples for verification.
    data = None if request.calibration is None else \
        load_calibration(request.calibration, model, preprocess=request.preprocess, limit=request.limit)
    off = {"enabled": False, "why": "ranges from QAT: the model was trained with these weights"}
    info = {"calibration": {"source": "ranges from QAT", "samples": 0, "method": "qat-ema", "random": False},
            "ranges_from": "QAT",
            **qpass.details,
            "ranges": dict(qat.ranges),
            "accuracy_tools": {"bias_correction": off, "cross_layer_equalization": off}}
    return qdq, info, data


def _merge_layer_figures(quant_info: dict, rows: list[dict]) -> None:
    """Per layer: weight scales (from the pass) + output SQNR vs float and clipping (measured)."""
    by_tensor = {r["tensor"]: r for r in rows}
    for layer in quant_info.get("layers", []):
        row = by_tensor.get(layer.get("output"))
        if row is not None:
            layer.update({k: v for k, v in row.items() if k != "tensor"})
    quant_info["tensors"] = rows


def _publish(staging: Path, out_dir: Path, lowered: dict) -> dict[str, Path]:
    """Move every staged file (artifacts and their sidecars) into the output folder."""
    paths = {}
    for fmt, (path, _) in lowered.items():
        final = out_dir / path.name
        for sidecar in sorted(staging.glob(path.name + ".*")):
            sidecar.replace(out_dir / sidecar.name)
        path.replace(final)
        paths[fmt] = final
    return paths


def _output_steps(qdq_model: ir.Model, quant_info: dict) -> list[float | None]:
    """The quantization step (scale) of each graph output, where the output is quantized."""
    acts = quant_info.get("activations", {})
    return [acts[v.name]["scale"] if v.name in acts else None for v in qdq_model.graph.outputs]


def _verify(imported: ImportedModel, inputs: list[list[np.ndarray]], reference_model: ir.Model,
            qdq_model: ir.Model | None, quant_info: dict | None, target: Target, staged: dict[str, Path],
            lowering_info: dict[str, dict], accuracy: tuple[float | None, bool] = (None, False)) -> dict:
    """Each staged artifact against the float graph (and torch), and an integer one against the
    QDQ graph: faithfulness layer by layer (TFLite; TVM when end to end is inconclusive), then
    what quantization costs vs float, held to the user's `accuracy` budget (budget, real calibration data?) when it applies."""
    output_names = [v.name for v in reference_model.graph.outputs]

    float_outputs = [OnnxRuntime.from_ir(reference_model, optimize=False).run(x) for x in inputs] if inputs else []
    references = {"float": float_outputs}
    result: dict = {"samples": len(inputs), "reference": "onnxruntime on the imported float graph", "artifacts": {}}
    if imported.torch_reference is not None:
        torch_outputs = [_run_torch(imported.torch_reference, x) for x in inputs]
        references["torch"] = torch_outputs
        result["export"] = compare_outputs(float_outputs, torch_outputs, output_names)
    qdq_outputs = steps = None
    if qdq_model is not None:
        qdq_runtime = OnnxRuntime.from_ir(qdq_model, optimize=False)
        qdq_outputs = [qdq_runtime.run(x) for x in inputs]
        steps = _output_steps(qdq_model, quant_info or {})
        result["quantized_reference"] = {"vs_float": compare_outputs(qdq_outputs, float_outputs, output_names)}

    failures = []
    # A freshly written artifact is untrusted: one that runs on this host is loaded and run in a
    # child process, so a runtime that aborts (XNNPACK's SIGABRT on a bad file) fails
    # verification instead of killing edgec. qemu runs out of process already.
    with ChildRuntimes() as child:
        for fmt, path in staged.items():
            info = lowering_info.get(fmt, {})
            io_params = (info["inputs"], info["outputs"]) if info.get("quantized", {}).get("io") == "int8" else None
            try:
                if runs_on_this_host(fmt, target):
                    runtime, where = child.open(path, **({"io_params": io_params} if io_params else {})), "host"
                else:
                    runtime, where = verification_runtime(fmt, path, target)  # qemu-arm64, gpu0 or why not
                    if runtime is None:
                        result["artifacts"][fmt] = {"ran": False, "why": where}
                        continue
                    if io_params:
                        runtime = FloatIO(runtime, *io_params)
                layers = None
                if qdq_model is not None and isinstance(runtime, IsolatedRuntime) and \
                        "tensor_map" in info.get("quantized", {}):
                    layers = _layer_faithfulness(child, path, qdq_model, info, inputs[:LAYER_SAMPLES], io_params)
                entry, problems = _verify_artifact(fmt, runtime, where, inputs, references, qdq_outputs, steps,
                                                   result, output_names, target, layers)
                if layers is None and fmt == "tvm" and qdq_model is not None and where == "host" and any(
                        p.startswith(f"{fmt} vs the quantized reference") for p in problems):
                    # Off by more than 1 LSB end to end: a wrong kernel, or rounding ties compounding
                    # through depth. Layer by layer (on a probe build) tells which.
                    layers = _tvm_layer_faithfulness(child, path, qdq_model, target, inputs[:LAYER_SAMPLES])
                    entry, problems = _verify_artifact(fmt, runtime, where, inputs, references, qdq_outputs,
                                                       steps, result, output_names, target, layers)
                    entry["faithfulness"]["checked_on"] = "a probe build (every quantized value an output)"
            except ChildCrash as crash:
                result["artifacts"][fmt] = {"ran": False, "crashed": str(crash)}
                failures.append(f"{fmt}: {crash}")
                continue
            if qdq_model is not None:
                entry["accuracy"] = accuracy_summary(entry["vs_float"], *accuracy, rms_rule=target.precision == "int8")
                problems += [f"{fmt} accuracy: {p}" for p in accuracy_failures(entry["accuracy"])]
            result["artifacts"][fmt] = entry
            failures += problems
    if failures:
        raise VerificationError(
            "verification failed, no artifact written:\n  " + "\n  ".join(failures)
            + "\n(use --no-verify to write the artifacts anyway)"
        )
    return result


# Samples the layer-by-layer check runs (each costs one onnxruntime run of the cut QDQ graph).
LAYER_SAMPLES = 2


def _layer_faithfulness(child: ChildRuntimes, path: Path, qdq_model: ir.Model, info: dict,
                        samples: list[list[np.ndarray]], io_params) -> dict:
    """Each int8 layer of the artifact vs the QDQ graph fed the artifact's own inputs (faithfulness.py)."""
    def fed(sample):  # an int8-I/O artifact takes its inputs quantized
        if io_params is None:
            return sample
        return [np.clip(np.rint(x / s["scale"]) + s["zero_point"], -128, 127).astype(np.int8) if "scale" in s else x
                for x, s in zip(sample, io_params[0])]

    def intermediates(batch, tensors):
        return child.intermediates(path, [fed(x) for x in batch], tensors)

    return layer_agreement(qdq_model, info["quantized"]["tensor_map"], samples, intermediates)


def _tvm_layer_faithfulness(child: ChildRuntimes, path: Path, qdq_model: ir.Model, target: Target,
                            samples: list[list[np.ndarray]]) -> dict:
    """Each int8 layer of a TVM lowering vs the QDQ graph fed the lowering's own inputs, read from
    a probe build (edgec/lower/tvm/probe.py) lowered beside the artifact and run in the child."""
    from edgec.lower.tvm.probe import build_probe

    with tempfile.TemporaryDirectory(prefix=".probe.", dir=path.parent) as folder:
        probe_path, tensor_map = build_probe(qdq_model, target, Path(folder))
        probe = child.open(probe_path)

        def intermediates(batch, tensors):
            return [{t: outputs[t] for t in tensors} for outputs in probe.run_all(batch)]

        return layer_agreement(qdq_model, tensor_map, samples, intermediates)


def _verify_artifact(fmt: str, runtime, where: str, inputs, references: dict, qdq_outputs, steps, result: dict,
                     output_names: list[str], target: Target, layers: dict | None = None) -> tuple[dict, list[str]]:
    """Run one staged artifact and compare it with every reference: (report entry, failures).

    An integer artifact checked layer by layer (`layers`, from faithfulness.layer_agreement) is
    held to 1 LSB per layer; end to end it then only has to stay closer to the quantized
    reference than quantization noise (rounding ties compound through depth). Without the
    layer figures (a TVM artifact, until its end-to-end figures call for a probe build) the
    end-to-end 1-LSB rule applies."""
    failures = []
    outputs = runtime.run_all(inputs) if isinstance(runtime, IsolatedRuntime) else run_all(runtime, inputs)
    entry = {"ran": True, "runtime": runtime.name, "where": where}
    for ref_name, ref in references.items():
        figures = compare_outputs(outputs, ref, output_names)
        entry[f"vs_{ref_name}"] = figures
        failures += [f"{fmt} vs {ref_name}: {p}" for p in tolerance_failures(figures, target.tolerance)]
    if qdq_outputs is not None:
        figures = compare_outputs(outputs, qdq_outputs, output_names)
        figures["lsb_agreement"] = lsb_agreement(outputs, qdq_outputs, steps)
        entry["vs_qdq"] = figures
        if layers is not None and target.tolerance.min_lsb_agreement is not None:
            entry["faithfulness"] = layer_summary(layers)
            failures += [f"{fmt}: {p}" for p in faithfulness_failures(layers)]
            # End to end: within 1 LSB on 99% of outputs, or else within the quantization noise.
            if lsb_failures(figures, result["quantized_reference"]["vs_float"], output_names, target.tolerance):
                failures += [f"{fmt} vs the quantized reference: {p}"
                             for p in drift_failures(figures, result["quantized_reference"]["vs_float"],
                                                     output_names)]
        else:
            failures += [f"{fmt} vs the quantized reference: {p}"
                         for p in lsb_failures(figures, result["quantized_reference"]["vs_float"],
                                               output_names, target.tolerance)]
    delegation = runtime.delegation() if hasattr(runtime, "delegation") else None
    if delegation is not None:
        entry["xnnpack"] = delegation
    return entry, failures


def _run_torch(fn, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        out = fn(*[torch.from_numpy(np.ascontiguousarray(x)) for x in inputs])
    if isinstance(out, torch.Tensor):
        out = (out,)
    flat = []
    for o in out:
        if isinstance(o, (tuple, list)):
            flat.extend(o)
        else:
            flat.append(o)
    return [o.detach().numpy() for o in flat]


def _op_histogram(model: ir.Model) -> dict[str, int]:
    hist: dict[str, int] = {}
    for node in model.graph:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        hist[key] = hist.get(key, 0) + 1
    return dict(sorted(hist.items()))


def _parameters(model: ir.Model) -> int:
    return int(sum(np.prod(v.const_value.shape.numpy()) for v in model.graph.initializers.values()
                   if v.const_value is not None))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _report(imported, target, model, reference_model, pass_records, lowered, paths, verification, timings,
            quant_info) -> dict:
    artifacts = []
    for fmt, (_, info) in lowered.items():
        path = paths[fmt]
        artifacts.append({
            "format": fmt,
            "path": str(path),
            "size_bytes": path.stat().st_size,
            "sha256": _sha256(path),
            "lowering": info,
        })
    return {
        "edgec_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "source": {"given": imported.source, "kind": imported.kind, "name": imported.name,
                   "notes": list(imported.notes)},
        "target": {"name": target.name, "arch": target.arch, "precision": target.precision,
                   "tvm_target": target.tvm_target,
                   "tolerance": dataclasses.asdict(target.tolerance)},
        "inputs": [{"name": n, "shape": list(s), "dtype": str(d)} for n, s, d in input_specs(reference_model)],
        "outputs": [{"name": v.name, "shape": list(v.shape or ())} for v in reference_model.graph.outputs],
        "ir": {
            "imported": {"nodes": len(reference_model.graph), "ops": _op_histogram(reference_model)},
            "after_passes": {"nodes": len(model.graph), "ops": _op_histogram(model)},
            "parameters": _parameters(model),
        },
        "passes": pass_records,
        "quantization": quant_info,
        "artifacts": artifacts,
        "verification": verification if verification is not None else {"skipped": "--no-verify"},
        "timings": timings,
    }
