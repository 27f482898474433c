"""One step of the coverage benchmark, run in its own subprocess so that a crash or a hang in any
library (torch.export, XNNPACK, TVM) costs one row of the table, not the benchmark.

    python -m benchmarks.coverage_support.runner build NAME WORKDIR
        build the model, run it in torch, torch.export it: WORKDIR/NAME.pt2 (or NAME.onnx when
        torch.export fails and torch.onnx's fallbacks succeed) and WORKDIR/NAME.io.npz (inputs, torch outputs)
    python -m benchmarks.coverage_support.runner compile NAME TARGET WORKDIR [FORMAT,...]
        edgec.compile the exported file for TARGET (int8: --calib random), then run every artifact on the
        saved inputs and compare with torch

Each writes its result as JSON to WORKDIR/NAME[.TARGET].result.json and prints `STAGE <stage>` lines as
it goes, so the parent can name the stage even when the process dies without writing a result.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

FP32_MAX_REL_ERROR = 1e-4  # issue 11's criterion: max |artifact - torch| / max |torch|

# edgec's progress messages (pipeline.py, api.py) -> the stage they open.
_STAGE_OF_LOG = (("importing", "import"), ("running", "passes"), ("calibrating", "quantize"),
                 ("measuring cross-layer", "quantize"), ("quantizing", "quantize"), ("lowering to", "lower"),
                 ("verifying", "verify"))


def _stage(name: str) -> None:
    print(f"STAGE {name}", flush=True)


def _measured_at() -> dict:
    """The code a step ran (the repository's commit when the step started; edgec is an editable install)."""
    import datetime
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"commit": commit, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _write(path: Path, result: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(path)


def _cause(exc: BaseException) -> str:
    """The error's own words (edgec's messages name node and op), capped; for an exception that is not
    an EdgecError (a bug somewhere) also the innermost frame, so the table says where."""
    from edgec.errors import EdgecError

    text = str(exc).strip() or type(exc).__name__
    lines = text.splitlines()
    short = "\n".join(lines[:12]) + (f"\n... ({len(lines) - 12} more lines)" if len(lines) > 12 else "")
    if isinstance(exc, EdgecError):
        return short[:2000]
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno} ({frame.name})" if frame else ""
    return f"{type(exc).__name__}{where}: {short[:1500]}"


def _flatten(out) -> list:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    flat = []
    for o in out:
        flat.extend(_flatten(o) if isinstance(o, (tuple, list)) else [o])
    return flat


def build(name: str, workdir: Path) -> dict:
    import torch

    from benchmarks.coverage_support.models import SUITE

    spec = SUITE[name]
    result: dict = {"model": name, "source": spec.source, "family": spec.family}
    stage = "build"
    t = time.perf_counter()
    try:
        _stage(stage)
        model, inputs = spec.build()
        result["parameters"] = sum(p.numel() for p in model.parameters())
        result["inputs"] = [{"shape": list(x.shape), "dtype": str(x.dtype).replace("torch.", "")} for x in inputs]
        with torch.no_grad():
            outputs = [o.detach().numpy() for o in _flatten(model(*inputs))]
        np.savez(workdir / f"{name}.io.npz", **{f"in_{i}": x.numpy() for i, x in enumerate(inputs)},
                 **{f"out_{i}": o for i, o in enumerate(outputs)})
        stage = "export"
        _stage(stage)
        try:
            program = torch.export.export(model, inputs)
            torch.export.save(program, workdir / f"{name}.pt2")
            result["exported"] = "pt2"
        except Exception as exc:  # torch.onnx has fallbacks (strict export, draft export) that may still work
            result["torch_export_error"] = _cause(exc)
            onnx_program = torch.onnx.export(model, inputs, dynamo=True, verbose=False)
            onnx_program.save(str(workdir / f"{name}.onnx"))
            result["exported"] = "onnx"
        result["status"] = "ok"
    except Exception as exc:
        result.update(status="failed", stage=stage, cause=_cause(exc))
    result["seconds"] = time.perf_counter() - t
    return result


def _compare(outputs: list[np.ndarray], reference: list[np.ndarray]) -> dict:
    from edgec.verify import compare_outputs

    names = [f"output_{i}" for i in range(len(reference))]
    figures = compare_outputs([outputs], [reference], names)
    return {k: figures[k] for k in ("max_abs_error", "max_rel_error", "sqnr_db", "top1_agreement")}


def compile_target(name: str, target: str, workdir: Path, formats: list[str] | None = None) -> dict:
    import edgec
    from edgec.errors import UnsupportedOpsError

    result: dict = {"model": name, "target": target}
    exported = next((p for p in (workdir / f"{name}.pt2", workdir / f"{name}.onnx") if p.exists()), None)
    if exported is None:
        return {**result, "status": "failed", "stage": "export", "cause": "no exported model (the build step failed)"}
    io = np.load(workdir / f"{name}.io.npz")
    inputs = [io[k] for k in sorted((k for k in io.files if k.startswith("in_")), key=lambda k: int(k[3:]))]
    reference = [io[k] for k in sorted((k for k in io.files if k.startswith("out_")), key=lambda k: int(k[4:]))]

    current = {"stage": "import"}

    def log(msg: str) -> None:
        for prefix, stage in _STAGE_OF_LOG:
            if msg.startswith(prefix) and current["stage"] != stage:
                current["stage"] = stage
                _stage(stage)

    from edgec.targets import load_registry

    is_int = load_registry().target(target).is_integer
    _stage("import")
    t = time.perf_counter()
    try:
        art = edgec.compile(str(exported), target=target, out_dir=workdir / f"out.{target}", name=name,
                            calibration="random" if is_int else None, formats=formats, log=log)
    except UnsupportedOpsError as exc:
        ops = sorted({op for _, op, _ in exc.nodes})
        return {**result, "status": "failed", "stage": current["stage"], "ops": ops, "cause": _cause(exc),
                "seconds": time.perf_counter() - t}
    except Exception as exc:
        return {**result, "status": "failed", "stage": current["stage"], "cause": _cause(exc),
                "error_type": type(exc).__name__, "seconds": time.perf_counter() - t}
    result["seconds"] = time.perf_counter() - t
    result["timings"] = art.report.get("timings", {})

    _stage("accuracy")
    vs_torch = {}
    for fmt in art.paths:
        try:
            vs_torch[fmt] = _compare(art.run(*inputs, fmt=fmt), reference)
        except Exception as exc:
            vs_torch[fmt] = {"error": _cause(exc)}
    result["vs_torch"] = vs_torch
    broken = {f: v["error"] for f, v in vs_torch.items() if "error" in v}
    if broken:
        return {**result, "status": "failed", "stage": "accuracy",
                "cause": "; ".join(f"{f}: {e}" for f, e in broken.items())}
    result["sqnr_db"] = min(v["sqnr_db"] for v in vs_torch.values())
    result["max_rel_error"] = max(v["max_rel_error"] for v in vs_torch.values())
    if not is_int and result["max_rel_error"] > FP32_MAX_REL_ERROR:
        worst = max(vs_torch, key=lambda f: vs_torch[f]["max_rel_error"])
        return {**result, "status": "failed", "stage": "accuracy",
                "cause": f"{worst} max relative error vs torch {result['max_rel_error']:.2e} > {FP32_MAX_REL_ERROR:g}"}
    result["status"] = "ok"
    return result


def main(argv: list[str]) -> int:
    command, name, *rest = argv
    started = _measured_at()
    if command == "build":
        workdir = Path(rest[0])
        result, out = build(name, workdir), workdir / f"{name}.result.json"
    elif command == "compile":
        target, workdir = rest[0], Path(rest[1])
        formats = rest[2].split(",") if len(rest) > 2 else None
        result, out = compile_target(name, target, workdir, formats), workdir / f"{name}.{target}.result.json"
    else:
        print(f"unknown command {command!r}: expected build or compile", file=sys.stderr)
        return 2
    _write(out, {**result, **started})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
