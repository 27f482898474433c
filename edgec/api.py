"""The Python API that deployment scripts use."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from edgec import preflight
from edgec.artifact import Artifact
from edgec.errors import EdgecError
from edgec.frontends import load_model
from edgec.frontends.shapes import normalize_input_shapes
from edgec.pipeline import QuantizeRequest, compile_imported
from edgec.quantization.calibration import check_calibration_file
from edgec.targets import load_registry
from edgec.training.qat import deployment as qat_deployment, is_prepared


def compile(  # noqa: A001  (edgec.compile is the product's verb)
    model: Any,
    example_inputs: Sequence | None = None,
    target: str = "x86_64-fp32",
    out_dir: str | Path = "out",
    *,
    input_shapes: dict | Sequence | None = None,
    formats: Sequence[str] | None = None,
    calibration: Any = None,
    calib_method: str | None = None,
    calib_percentile: float | None = None,
    calib_preprocess: str | None = None,
    calib_limit: int | None = None,
    equalization: bool | None = None,
    bias_correction: bool | None = None,
    accuracy_budget: float | None = None,
    fallback_precision: str = "float",
    io: str | None = None,
    verify: bool = True,
    samples: int = 4,
    allow_pickle: bool = False,
    name: str | None = None,
    devices: str | Path | None = None,
    tuning_db: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Artifact:
    """Compile a model for a target, verify it, and write the artifacts and report.json.

    model: a torch.nn.Module (with example_inputs), a torch.export.ExportedProgram, a path to a
    .pt2 / .pt (TorchScript) / .onnx file, or "zoo:NAME". Integer targets (e.g. arm64-int8) need
    `calibration`: an .npz/.npy path, an image folder, an array of stacked samples, any iterable
    of inputs (e.g. a DataLoader), or "random" for latency-only work. `equalization` and
    `bias_correction` override the target's accuracy tools; `io="int8"` gives the TFLite artifact
    int8 inputs and outputs (their scales and zero points are in the report). For int4 targets
    `accuracy_budget` picks int4 layers greedily (least sensitive first) while top-1 agreement
    with float drops by at most that many points (dB of SQNR for non-classifiers). For int8
    targets it keeps the layers whose int8 rounding costs most in float until top-1 agreement
    with float is within that many points (percent relative RMS error for non-classifiers);
    `fallback_precision="int16"` gives those layers TFLite's 16x8 mode (int16 activations, int8
    weights) instead of float. The report's quantization.mixed_precision lists each layer's
    choice and measured SQNR. `tuning_db` is a folder that `edgec.tune` wrote for this target:
    the TVM artifact's kernels with a record there run their tuned schedule, the others the
    default one (report: the tvm artifact's lowering.tuning). Returns an Artifact whose .report is
    the compile report and whose .run(x) runs the artifact on this host.
    """
    log = log or (lambda msg: None)
    if not isinstance(target, str):
        raise EdgecError(f"target {target!r}: expected a target name such as 'x86_64-fp32' (see `edgec targets`)")
    _check_fallback(fallback_precision, accuracy_budget)
    tgt = load_registry(devices).target(target)
    if io is not None:
        tgt = _with_io(tgt, io)
    if tuning_db is not None:
        tgt = _with_tuning_db(tgt, tuning_db)
    qat = None
    if is_prepared(model):  # edgec.training.qat: compile its float model with the ranges it learned
        qat = qat_deployment(model)
        example_inputs = model.example_inputs if example_inputs is None else example_inputs
        model = qat.module
    # Everything that can be checked before import is: no minutes of work before a typo is reported.
    preflight.check_options(tgt, samples=samples, calib_percentile=calib_percentile, calib_limit=calib_limit,
                            accuracy_budget=accuracy_budget, calib_method=calib_method, qat=qat is not None,
                            quantize_options=dict(calibration=calibration, calib_method=calib_method,
                                                  calib_percentile=calib_percentile,
                                                  calib_preprocess=calib_preprocess, calib_limit=calib_limit,
                                                  accuracy_budget=accuracy_budget))
    preflight.check_name(name)
    preflight.check_output_folder(out_dir, model)
    if tgt.is_integer:
        check_calibration_file(calibration, calib_preprocess)
    _check_formats(tgt, formats)
    shapes = normalize_input_shapes(input_shapes)
    t = time.perf_counter()
    log(f"importing {model if isinstance(model, (str, Path)) else type(model).__name__}")
    imported = load_model(model, example_inputs=example_inputs, input_shapes=shapes,
                          allow_pickle=allow_pickle, name=name)
    if tgt.is_integer:
        preflight.check_finite_weights(imported.model)
    import_s = time.perf_counter() - t
    request = QuantizeRequest(calibration=calibration, method=calib_method, percentile=calib_percentile,
                              preprocess=calib_preprocess, limit=calib_limit, qat=qat,
                              equalization=equalization, bias_correction=bias_correction,
                              accuracy_budget=accuracy_budget, fallback_precision=fallback_precision)
    return compile_imported(imported, tgt, out_dir, input_shapes=shapes, quantize=request,
                            formats=tuple(formats) if formats else None,
                            verify=verify, samples=samples, log=log, timings={"import_s": import_s})


def tune(
    model: Any,
    target: str = "x86_64-fp32",
    *,
    trials: int,
    minutes: float | None = None,
    db: str | Path | None = None,
    example_inputs: Sequence | None = None,
    input_shapes: dict | Sequence | None = None,
    calibration: Any = None,
    device: str | None = None,
    allow_pickle: bool = False,
    devices: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Tune the TVM kernels of `model` for `target` with MetaSchedule; records go into `db`
    (default .cache/edgec/tuning/<target>), which `compile(..., tuning_db=db)` then reads.

    The model is taken through the same import and passes as `compile` (integer targets need
    `calibration`, as there), so the tasks are the kernels compile will build. `trials` is the
    total measurement budget, `minutes` an optional wall-time budget. Host-architecture targets
    are timed here (1 thread); others on an rpc board of devices.yaml (`device`, or the first
    for the target's arch), and with none reachable nothing is tuned (EdgecError). Returns a
    summary: tasks, tuned, trials, seconds and one row per task (best seconds before/after)."""
    from edgec.lower.tvm.tuning import check_budget, tune_model
    from edgec.lower.tvm.tuning_db import check_db_dir, default_db_dir
    from edgec.passes import fix_input_shapes
    from edgec.pipeline import prepare_for_lowering

    log = log or print
    registry = load_registry(devices)
    tgt = registry.target(target)
    if "tvm" not in tgt.formats:
        raise EdgecError(f"target '{target}' makes no TVM artifact ({', '.join(tgt.formats)}); nothing to tune")
    check_budget(trials, minutes)
    db = check_db_dir(db if db is not None else default_db_dir(tgt.name), must_exist=False)
    if tgt.is_integer:
        check_calibration_file(calibration, None)
    shapes = normalize_input_shapes(input_shapes)
    imported = load_model(model, example_inputs=example_inputs, input_shapes=shapes, allow_pickle=allow_pickle)
    ir_model = fix_input_shapes(imported.model, shapes or {})
    prepared = prepare_for_lowering(ir_model, tgt, tgt.formats, QuantizeRequest(calibration=calibration), log)
    return tune_model(prepared.model, tgt, registry, db, trials=trials, minutes=minutes, device=device, log=log)


def _with_tuning_db(target, db):
    import dataclasses

    from edgec.lower.tvm.tuning_db import check_db_dir

    if "tvm" not in target.formats:
        raise EdgecError(f"--tuning-db: target '{target.name}' makes no TVM artifact ({', '.join(target.formats)})")
    path = check_db_dir(db, must_exist=True)
    return dataclasses.replace(target, options={**target.options, "tuning_db": str(path)})


def _check_formats(target, formats) -> None:
    if formats is None:
        return
    if isinstance(formats, str) or not all(isinstance(f, str) for f in formats):
        raise EdgecError(f"formats {formats!r}: expected a list of format names, e.g. ['tflite']")
    for fmt in formats:
        if fmt not in target.formats:
            raise EdgecError(f"--format '{fmt}': target '{target.name}' makes {', '.join(target.formats)}")


def _check_fallback(fallback_precision: str, accuracy_budget: float | None) -> None:
    from edgec.quantization.mixed_precision import FALLBACKS

    if fallback_precision not in FALLBACKS:
        raise EdgecError(f"unknown --fallback-precision '{fallback_precision}'; expected one of {', '.join(FALLBACKS)}")
    if fallback_precision != "float" and accuracy_budget is None:
        raise EdgecError(f"--fallback-precision {fallback_precision} chooses layers under an accuracy budget; "
                         "add --accuracy-budget (e.g. 1.0)")


def _with_io(target, io: str):
    """int8 inputs/outputs for the TFLite artifact (users then feed int8 and read int8)."""
    import dataclasses

    if io not in ("float", "int8"):
        raise EdgecError(f"--io '{io}': expected 'float' or 'int8'")
    if io == "int8" and not target.is_integer:
        raise EdgecError(f"--io int8 needs an integer target; '{target.name}' is {target.precision}")
    return dataclasses.replace(target, options={**target.options, "io": io})
