"""PyTorch files: ExportedProgram (.pt2), TorchScript (.pt), and -- only on request -- pickles.

Unpickling a full module runs arbitrary code from the file, so it is refused unless the
caller opts in explicitly (`--trust-pickle` / `allow_pickle=True`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
import zipfile
from pathlib import Path

import torch

from edgec.errors import ModelLoadError

RESAVE_HINT = (
    "save the model with torch.export.save(torch.export.export(model, (x,)), 'model.pt2') "
    "or torch.jit.save(torch.jit.trace(model, (x,)), 'model.pt')"
)


def file_kind(path: Path) -> str:
    """'exported-program', 'torchscript', 'torch-save-zip' or 'legacy-pickle' from the archive layout."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80":  # pickle protocol marker: torch.save(..., _use_new_zipfile_serialization=False)
            return "legacy-pickle"
        raise ModelLoadError(f"{path}: not a PyTorch file (neither a zip archive nor a pickle); is it truncated?")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile:
        raise ModelLoadError(f"{path}: the archive is corrupt or truncated") from None
    if any(n.endswith("archive_format") or "/models/" in n for n in names):
        return "exported-program"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    return "torch-save-zip"


def load_exported_program(path: Path, allow_pickle: bool = False) -> "torch.export.ExportedProgram":
    """torch.export.load, made safe (see pt2_safety) unless the caller trusts the file."""
    from edgec.frontends.pt2_safety import UnsafeArchive, check_archive, restricted_loading

    data = path.read_bytes()  # checked and loaded from the same bytes: no swap between the two
    guard = contextlib.nullcontext()
    if not allow_pickle:
        check_archive(data, str(path))
        guard = restricted_loading()
    try:
        with guard, _quiet_torch_logs():
            return torch.export.load(io.BytesIO(data))
    except UnsafeArchive as exc:
        raise ModelLoadError(f"{path}: refused: {exc}, and loading it could run code from the file; "
                             "pass --trust-pickle if you trust it") from None
    except pickle.UnpicklingError:
        raise ModelLoadError(f"{path}: holds pickled objects other than tensors, and unpickling them can run "
                             "code from the file; pass --trust-pickle if you trust it") from None
    except Exception as exc:
        raise ModelLoadError(f"{path}: cannot load the ExportedProgram ({_first_line(exc)})") from None


@contextlib.contextmanager
def _quiet_torch_logs():
    """torch.export.load logs its own tracebacks (logger.warning(exc_info=True)) before raising."""
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export", "torch._export.serde.serialize")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def load_torchscript(path: Path) -> "torch.jit.ScriptModule":
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ModelLoadError(f"{path}: cannot load the TorchScript module ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def load_pickled_module(path: Path, allow_pickle: bool) -> torch.nn.Module:
    """torch.save(model) files. Safe weights-only loading first; full unpickling only on opt-in."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = None  # holds more than tensors: a pickled module (or worse)
    except Exception as exc:
        raise ModelLoadError(f"{path}: cannot read ({type(exc).__name__}); the file may be truncated") from None
    if obj is not None:
        if isinstance(obj, torch.nn.Module):
            return obj.eval()
        raise ModelLoadError(
            f"{path}: holds only weights (a {type(obj).__name__}, e.g. a state_dict), not an architecture; "
            f"{RESAVE_HINT}, or build a zoo model and load these weights into it"
        )
    if not allow_pickle:
        raise ModelLoadError(
            f"{path}: is a pickled full module; unpickling it runs arbitrary code from the file, so edgec "
            f"refuses by default. Prefer: {RESAVE_HINT}. If you trust this file, pass --trust-pickle "
            "(API: allow_pickle=True)"
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: unpickling failed ({type(exc).__name__}: {exc}); the module's class must be importable"
        ) from None
    if not isinstance(obj, torch.nn.Module):
        raise ModelLoadError(f"{path}: unpickled a {type(obj).__name__}, not a torch.nn.Module")
    return obj.eval()
