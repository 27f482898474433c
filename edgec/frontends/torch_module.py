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


@contextlib.contextmanager
def copies_instead_of_stride_decisions(program: "torch.export.ExportedProgram"):
    """Within the block, `program`'s `contiguous(x)` is `clone(x, contiguous_format)` and `reshape(x, s)`
    is `view(clone(x, contiguous_format), s)`; the graph is restored on exit.

    Both ops decide between a view and a copy from the strides they see. The ONNX exporter decomposes
    the program by tracing it with fake tensors and then runs the result again, and some ops' fake
    strides differ from their decomposition's: CPU scaled_dot_product_attention's meta output is laid
    out [batch, seq, heads, dim] where its math decomposition is contiguous, so the attention output's
    `transpose(1, 2).contiguous().reshape(...)` (T5, Swin) was traced as a bare view, which then fails
    ("Cannot view a tensor with shape ... and strides ..."). A clone is contiguous whatever its input's
    strides, so the view after it is always valid; in ONNX it is an Identity, removed by the optimizer.
    """
    graph = program.graph_module.graph
    aten = torch.ops.aten
    rewritten, added = [], []
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (aten.contiguous.default, aten.reshape.default):
            continue
        if node.target is aten.contiguous.default and node.kwargs.get("memory_format", torch.contiguous_format) \
                is not torch.contiguous_format:
            continue  # channels_last and friends: a different layout, left to the exporter
        rewritten.append((node, node.target, node.args, dict(node.kwargs)))
        if node.target is aten.contiguous.default:
            node.target, node.args, node.kwargs = aten.clone.default, node.args[:1], \
                {"memory_format": torch.contiguous_format}
        else:
            with graph.inserting_before(node):
                copy = graph.call_function(aten.clone.default, node.args[:1],
                                           {"memory_format": torch.contiguous_format})
            if "val" in node.args[0].meta:
                copy.meta["val"] = node.args[0].meta["val"].clone(memory_format=torch.contiguous_format)
            added.append(copy)
            node.target, node.args = aten.view.default, (copy, *node.args[1:])
    program.graph_module.recompile()
    try:
        yield
    finally:
        for node, target, args, kwargs in rewritten:
            node.target, node.args, node.kwargs = target, args, kwargs
        for copy in added:
            graph.erase_node(copy)
        program.graph_module.recompile()


def export_module(module: torch.nn.Module, example_inputs: tuple, what: str = "model") -> ir.Model:
    if isinstance(module, torch.nn.Module):
        module = module.eval()
    try:
        with _quiet_exporter(), torch.no_grad():
            try:  # torch.onnx's own first capture, so the program gets the same stride-safe conversion as a .pt2
                program = torch.export.export(module, tuple(example_inputs), strict=False)
            except Exception:  # noqa: BLE001 - torch.onnx also tries strict and draft export
                return torch.onnx.export(module, tuple(example_inputs), dynamo=True, opset_version=OPSET,
                                         verbose=False).model
            with copies_instead_of_stride_decisions(program):
                return torch.onnx.export(program, dynamo=True, opset_version=OPSET, verbose=False).model
    except Exception as exc:  # torch raises many kinds; the user needs the first line and what to do
        raise ModelLoadError(
            f"{what}: torch.export could not capture the model ({_first_line(exc)}). "
            "Make the forward pass traceable by torch.export (no data-dependent Python control flow), "
            "or export it to ONNX yourself and compile the .onnx"
        ) from None


def export_program(program: "torch.export.ExportedProgram", what: str = "model") -> ir.Model:
    try:
        with _quiet_exporter(), copies_instead_of_stride_decisions(program):
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
