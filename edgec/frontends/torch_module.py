"""torch.nn.Module / ExportedProgram -> onnx_ir.Model through the dynamo ONNX exporter."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import onnx_ir as ir
import torch

from edgec.errors import ModelLoadError
from edgec.ir import OPSET


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter prints progress and warns about torchvision; users of edgec see neither."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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

    buf = io.BytesIO()
    try:
        with _quiet_exporter():
            torch.onnx.export(module, tuple(example_inputs), buf, dynamo=False, opset_version=18,
                              input_names=[f"input_{i}" if len(example_inputs) > 1 else "input"
                                           for i in range(len(example_inputs))])
    except Exception as exc:
        raise ModelLoadError(f"{what}: the TorchScript module could not be exported to ONNX ({_first_line(exc)})") from None
    return model_from_bytes(buf.getvalue(), what)
