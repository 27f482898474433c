"""torch.nn.Module / ExportedProgram -> onnx_ir.Model through the dynamo ONNX exporter."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings

import onnx_ir as ir
import torch

from edgec.errors import ModelLoadError
from edgec.ir import OPSET


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter prints progress and warns about torchvision; users of edgec see neither."""
    # Every torch logger (torch.fx, torch._dynamo, ... log failed graphs and tracebacks at WARNING and
    # ERROR before raising): edgec turns the exception into one message, the logs add only noise.
    names = ["torch"] + [n for n, lg in logging.root.manager.loggerDict.items()
                         if n.startswith("torch.") and isinstance(lg, logging.Logger)]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def _first_line(exc: BaseException) -> str:
    """The root cause's first line: torch.onnx wraps torch.export's error in its own 'step 1/3'."""
    while exc.__cause__ is not None and exc.__cause__ is not exc:
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def export_module(module: torch.nn.Module, example_inputs: tuple, what: str = "model") -> ir.Model:
    if isinstance(module, torch.nn.Module):
        module = module.eval()
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(module, tuple(example_inputs), dynamo=True,
                                        opset_version=OPSET, verbose=False)
    except Exception as exc:  # torch raises many kinds; the user needs the first line and what to do
        raise ModelLoadError(
            f"{what}: torch.export could not capture the model ({_first_line(exc)}). "
            "Make the forward pass traceable by torch.export (no data-dependent Python control flow), "
            "or export it to ONNX yourself and compile the .onnx"
        ) from None
    return program.model


def export_program(program: "torch.export.ExportedProgram", what: str = "model") -> ir.Model:
    try:
        with _quiet_exporter():
            onnx_program = torch.onnx.export(program, dynamo=True, opset_version=OPSET, verbose=False)
    except Exception as exc:
        raise ModelLoadError(f"{what}: the ExportedProgram could not be converted to ONNX ({_first_line(exc)})") from None
    return onnx_program.model


def export_torchscript(module: "torch.jit.ScriptModule", example_inputs: tuple, what: str) -> ir.Model:
    """TorchScript has no torch.export path; the TorchScript-based exporter still handles it."""
    from edgec.frontends.onnx_file import model_from_bytes

    _check_torchscript_runs(module, example_inputs, what)
    buf = io.BytesIO()
    try:
        with _quiet_exporter():
            torch.onnx.export(module, tuple(example_inputs), buf, dynamo=False, opset_version=18,
                              input_names=[f"input_{i}" if len(example_inputs) > 1 else "input"
                                           for i in range(len(example_inputs))])
    except Exception as exc:
        raise ModelLoadError(f"{what}: the TorchScript module could not be exported to ONNX ({_first_line(exc)})") from None
    return model_from_bytes(buf.getvalue(), what)


def _check_torchscript_runs(module, example_inputs: tuple, what: str) -> None:
    """TorchScript keeps no input shapes: run it once so a wrong --input-shape is reported with the
    input's name, the shape given and the module's own complaint (which says what it expected)."""
    try:
        with torch.no_grad():
            module(*example_inputs)
    except Exception as exc:
        try:
            names = [a.name for a in module.forward.schema.arguments[1:]]
        except (AttributeError, RuntimeError):
            names = []
        given = ", ".join(f"'{names[i] if i < len(names) else f'input {i}'}' {list(t.shape)}"
                          for i, t in enumerate(example_inputs))
        raise ModelLoadError(f"{what}: the TorchScript module fails on input {given}: {_innermost(exc)}; "
                             "pass the input shape it was traced or scripted for with --input-shape") from None


def _innermost(exc: BaseException) -> str:
    """TorchScript wraps the real error in its interpreter's traceback; its last 'XError: ...' line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        head, sep, rest = line.partition(": ")
        if sep and head.endswith("Error") and " " not in head:
            return rest
    return lines[-1] if lines else type(exc).__name__
