"""Frontends: every supported model source becomes one float onnx_ir.Model.

Sources: a torch.nn.Module with example inputs, a torch.export.ExportedProgram, an
ExportedProgram file (.pt2), a TorchScript file (.pt), an ONNX file (.onnx), or a zoo model
(`zoo:NAME?key=value`). A pickled full-module .pt is loaded only with allow_pickle=True.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnx_ir as ir
import torch

from edgec.errors import InputShapeError, ModelLoadError
from edgec.frontends import onnx_file, torch_file, torch_module
from edgec.frontends.shapes import InputShapes, normalize_input_shapes, shape_for


@dataclasses.dataclass
class ImportedModel:
    model: ir.Model
    name: str  # a file stem for artifacts
    source: str  # what the user gave, for the report
    kind: str  # torch-module | exported-program | torchscript | pickled-module | onnx | zoo
    torch_reference: Callable[..., Any] | None = None
    example_inputs: list[np.ndarray] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)  # what the import fixed (report: source.notes)


def load_model(
    source: Any,
    example_inputs: Sequence | None = None,
    input_shapes: InputShapes | Sequence | None = None,
    allow_pickle: bool = False,
    name: str | None = None,
) -> ImportedModel:
    shapes = normalize_input_shapes(input_shapes)
    imported = _load(source, example_inputs, shapes, allow_pickle, name)
    _check_input_sizes(imported, shapes)
    return imported


def _check_input_sizes(imported: ImportedModel, shapes: InputShapes) -> None:
    """A 0-sized input dimension makes every kernel empty: refuse it naming the input."""
    inputs = list(imported.model.graph.inputs)
    for i, value in enumerate(inputs):
        if value.shape is None or shape_for(shapes, i, value.name, len(inputs)) is not None:
            continue
        dims = [d if isinstance(d, int) else str(d) for d in value.shape]
        if any(isinstance(d, int) and d == 0 for d in dims):
            raise InputShapeError(f"{imported.source}: input '{value.name}' has a 0-sized dimension "
                                  f"{dims}; give positive sizes with --input-shape {value.name}=...")


def _load(source: Any, example_inputs, shapes: InputShapes, allow_pickle: bool, name: str | None) -> ImportedModel:
    if isinstance(source, torch.export.ExportedProgram):
        return _from_exported_program(source, name or "model", "ExportedProgram", shapes)
    if isinstance(source, torch.nn.Module):
        return _from_module(source, example_inputs, shapes, name or type(source).__name__.lower(),
                            f"torch.nn.Module {type(source).__name__}", "torch-module")
    if isinstance(source, ir.Model):
        return ImportedModel(source, name or "model", "onnx_ir.Model", "onnx")
    if isinstance(source, (str, Path)):
        text = str(source)
        if text.startswith("zoo:"):
            return _from_zoo(text[len("zoo:"):], shapes, example_inputs)
        return _from_path(Path(text), example_inputs, shapes, allow_pickle, name)
    raise ModelLoadError(
        f"cannot compile a {type(source).__name__}; give a torch.nn.Module, an ExportedProgram, "
        "a path to .pt2/.pt/.onnx, or 'zoo:NAME'"
    )


def _from_path(path: Path, example_inputs, shapes: InputShapes, allow_pickle: bool, name: str | None) -> ImportedModel:
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ModelLoadError(f"{path}: is a directory; give a .pt2, .pt or .onnx file")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: the file is empty")
    stem = name or path.name.split(".")[0] or "model"  # '.hidden.onnx' must not make hidden artifacts
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        model = onnx_file.load_onnx(path, keep_inputs={k for k in shapes if k})
        return ImportedModel(model, stem, str(path), "onnx", notes=list(model.meta.get(onnx_file.NOTES_KEY, [])))
    if suffix in (".pt2", ".pt", ".pth", ".ptl"):
        kind = torch_file.file_kind(path)
        if kind == "exported-program":
            program = torch_file.load_exported_program(path, allow_pickle)
            return _from_exported_program(program, stem, str(path), shapes)
        if kind == "torchscript":
            module = torch_file.load_torchscript(path)
            inputs = _torch_inputs(example_inputs, shapes, str(path), needs="TorchScript keeps no input shapes")
            model = torch_module.export_torchscript(module, inputs, str(path))
            return ImportedModel(model, stem, str(path), "torchscript", module, [t.numpy() for t in inputs])
        module = torch_file.load_pickled_module(path, allow_pickle)
        return _from_module(module, example_inputs, shapes, stem, str(path), "pickled-module")
    raise ModelLoadError(f"{path}: unknown model file type '{suffix}'; give a .pt2 (ExportedProgram), .pt (TorchScript) or .onnx file")


def _from_module(module, example_inputs, shapes, stem, what, kind) -> ImportedModel:
    inputs = _torch_inputs(example_inputs, shapes, what, needs="a torch module has no input shapes of its own")
    model = torch_module.export_module(module, inputs, what)
    return ImportedModel(model, stem, what, kind, module.eval(), [t.detach().numpy() for t in inputs])


def _from_exported_program(program, stem, what, shapes) -> ImportedModel:
    model = torch_module.export_program(program, what)
    inputs = None
    saved = getattr(program, "example_inputs", None)
    if saved and saved[0] and all(isinstance(t, torch.Tensor) for t in saved[0]):
        inputs = [t.detach().numpy() for t in saved[0]]
    return ImportedModel(model, stem, what, "exported-program", program.module(), inputs)


def _from_zoo(spec: str, shapes: InputShapes, example_inputs) -> ImportedModel:
    from edgec import zoo

    name, kwargs = zoo.parse_spec(spec)
    zm = zoo.build(name, **kwargs)
    inputs = example_inputs if example_inputs is not None else zm.example_inputs
    if shapes:
        inputs = None
    return _from_module(zm.module, inputs, shapes, zm.name, f"zoo:{spec}", "zoo")


def _torch_inputs(example_inputs, shapes: InputShapes, what: str, needs: str) -> tuple:
    if example_inputs is not None:
        if isinstance(example_inputs, (torch.Tensor, np.ndarray)):
            example_inputs = (example_inputs,)
        return tuple(torch.as_tensor(np.asarray(t)) if not isinstance(t, torch.Tensor) else t for t in example_inputs)
    if not shapes:
        raise InputShapeError(
            f"{what}: {needs}; pass --input-shape 1,3,224,224 (CLI) or example_inputs=(x,) (API)"
        )
    tensors = []
    n = len(shapes)
    for i in range(n):
        shape = shape_for(shapes, i, f"input_{i}", n)
        if shape is None:
            shape = list(shapes.values())[i]
        tensors.append(torch.randn(*shape, generator=torch.Generator().manual_seed(i)))
    return tuple(tensors)
