"""Checks that run before a compile does any work: options in range, an output folder edgec can
write, calibration data that is readable, and (after import) weights an integer target can
quantize. Each failure is one EdgecError naming the option, folder, file or tensor."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import EdgecError

CALIB_OPTIONS = ("calibration", "calib_method", "calib_percentile", "calib_preprocess", "calib_limit",
                 "accuracy_budget")
_FLAG = {"calibration": "--calib", "calib_method": "--calib-method", "calib_percentile": "--calib-percentile",
         "calib_preprocess": "--calib-preprocess", "calib_limit": "--calib-limit",
         "accuracy_budget": "--accuracy-budget"}


def check_options(target, *, samples: Any, calib_percentile: Any, calib_limit: Any, accuracy_budget: Any,
                  calib_method: Any, quantize_options: dict[str, Any], qat: bool) -> None:
    _integer("--samples (samples)", samples, 1)
    if calib_limit is not None:
        _integer("--calib-limit (calib_limit)", calib_limit, 1)
    if calib_percentile is not None:
        value = _number("--calib-percentile (calib_percentile)", calib_percentile)
        if not 0 < value <= 100:
            raise EdgecError(f"--calib-percentile {calib_percentile}: expected a percentile in (0, 100], e.g. 99.99")
    if accuracy_budget is not None:
        value = _number("--accuracy-budget (accuracy_budget)", accuracy_budget)
        if not 0 <= value < float("inf"):
            raise EdgecError(f"--accuracy-budget {accuracy_budget}: expected a finite number >= 0")
    if calib_method is not None:
        from edgec.quantization.observers import METHODS

        if calib_method not in METHODS:
            raise EdgecError(f"--calib-method '{calib_method}': expected one of {', '.join(METHODS)}")
    given = [k for k, v in quantize_options.items() if v is not None]
    if given and not target.is_integer and not qat:
        flags = ", ".join(_FLAG[k] for k in given)
        raise EdgecError(f"{flags}: target '{target.name}' is a float target ({target.precision}) and does not "
                         f"quantize; drop {flags}, or compile for an integer target (e.g. "
                         f"{target.arch}-int8, see `edgec targets`)")


def _integer(flag: str, value: Any, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise EdgecError(f"{flag} {value!r}: expected an integer >= {lowest}")
    if value < lowest:
        raise EdgecError(f"{flag} {value}: expected an integer >= {lowest}")
    return int(value)


def _number(flag: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise EdgecError(f"{flag} {value!r}: expected a number")
    if value != value:  # NaN
        raise EdgecError(f"{flag} nan: expected a number")
    return float(value)


def check_name(name: Any) -> None:
    if name is None:
        return
    if not isinstance(name, str) or not name.strip():
        raise EdgecError(f"--name {name!r}: expected a non-empty file name")
    if "/" in name or os.sep in name or "\\" in name or name in (".", "..") or "\0" in name or name.startswith("."):
        raise EdgecError(f"cannot write to --name '{name}': the name must be a plain file name (no path "
                         "separators, not starting with '.'); choose the folder with -o")
    if len(name.encode()) > 180:
        raise EdgecError(f"--name '{name[:40]}...': too long for a file name ({len(name.encode())} bytes)")


def check_output_folder(out_dir: Any, model: Any) -> Path:
    """-o must be a folder edgec can create files in, and not the model file itself."""
    if not isinstance(out_dir, (str, Path)):
        raise EdgecError(f"out_dir {out_dir!r}: expected a folder path")
    out = Path(out_dir)
    if isinstance(model, (str, Path)) and not str(model).startswith("zoo:"):
        try:
            same = out.resolve() == Path(model).resolve()
        except OSError:
            same = False
        if same:
            raise EdgecError(f"cannot write to {out}: it is the model file itself; give an output folder with -o")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        what = "it is a file" if existing == out else f"{existing} is a file"
        raise EdgecError(f"cannot write to {out}: {what}, not a folder; give an output folder with -o")
    try:  # os.access says yes to root on a read-only filesystem: try for real
        fd, probe = tempfile.mkstemp(prefix=".edgec-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EdgecError(f"cannot write to {out}: creating a file in {existing} failed ({exc.strerror or exc}); "
                         "choose another folder with -o") from None
    return out


def check_finite_weights(model) -> None:
    """An integer target derives scales from the weights: NaN/Inf there gives a useless model."""
    for value in model.graph.initializers.values():
        array = value.const_value.numpy() if value.const_value is not None else None
        if array is None or array.dtype.kind != "f":
            continue
        bad = ~np.isfinite(array)
        if bad.any():
            from edgec.quantization.calibration import non_finite

            raise EdgecError(f"weight '{value.name}' {list(array.shape)} holds {non_finite(array)}; an integer "
                             "target cannot quantize it: fix the model's weights (or compile for a float target)")
