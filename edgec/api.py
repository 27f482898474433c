"""The Python API that deployment scripts use."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from edgec.artifact import Artifact
from edgec.frontends import load_model
from edgec.frontends.shapes import normalize_input_shapes
from edgec.pipeline import QuantizeRequest, compile_imported
from edgec.targets import load_registry


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
    verify: bool = True,
    samples: int = 4,
    allow_pickle: bool = False,
    name: str | None = None,
    devices: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Artifact:
    """Compile a model for a target, verify it, and write the artifacts and report.json.

    model: a torch.nn.Module (with example_inputs), a torch.export.ExportedProgram, a path to a
    .pt2 / .pt (TorchScript) / .onnx file, or "zoo:NAME". Integer targets (e.g. arm64-int8) need
    `calibration`: an .npz/.npy path, an image folder, an array of stacked samples, any iterable
    of inputs (e.g. a DataLoader), or "random" for latency-only work. Returns an Artifact whose .report is
    the compile report and whose .run(x) runs the artifact on this host.
    """
    log = log or (lambda msg: None)
    tgt = load_registry(devices).target(target)
    shapes = normalize_input_shapes(input_shapes)
    t = time.perf_counter()
    log(f"importing {model if isinstance(model, (str, Path)) else type(model).__name__}")
    imported = load_model(model, example_inputs=example_inputs, input_shapes=shapes,
                          allow_pickle=allow_pickle, name=name)
    import_s = time.perf_counter() - t
    request = QuantizeRequest(calibration=calibration, method=calib_method, percentile=calib_percentile,
                              preprocess=calib_preprocess, limit=calib_limit)
    return compile_imported(imported, tgt, out_dir, input_shapes=shapes, quantize=request,
                            formats=tuple(formats) if formats else None,
                            verify=verify, samples=samples, log=log, timings={"import_s": import_s})
