"""Fix the model's dynamic input dimensions to the sizes the user compiles for.

Every later stage needs static shapes (DESIGN: "float, NCHW, static shapes"). This runs before
the pass recipe: it sets the graph inputs' shapes from `--input-shape`, refuses shapes that
contradict the model, and re-runs shape inference so intermediate values follow.
"""

from __future__ import annotations

from typing import Mapping

import onnx_ir as ir

from edgec.errors import InputShapeError
from edgec.passes.shape_inference import infer_shapes_in_place


def _dims_text(shape: ir.Shape | tuple | None) -> str:
    if shape is None:
        return "unknown"
    return "[" + ",".join(str(d) if isinstance(d, int) else (d.value or "?") for d in shape) + "]"


def _suggestion(name: str, shape: ir.Shape | None) -> str:
    """`--input-shape x=1,3,H,W`-style hint: known dims kept, a dynamic batch as 1."""
    if shape is None:
        return f"--input-shape {name}=<dims>"
    dims = []
    for i, d in enumerate(shape):
        if isinstance(d, int):
            dims.append(str(d))
        else:
            dims.append("1" if i == 0 else f"<{d.value or f'dim{i}'}>")
    return f"--input-shape {name}={','.join(dims)}"


def _given_shape(shapes: Mapping, index: int, name: str, n_inputs: int) -> tuple[int, ...] | None:
    # Keys follow edgec.frontends.shapes.InputShapes: an input's name, "#<position>", or
    # None for "the model's only input".
    for key in (name, f"#{index}"):
        if key in shapes:
            return tuple(int(d) for d in shapes[key])
    if None in shapes and n_inputs == 1:
        return tuple(int(d) for d in shapes[None])
    return None


def _check_compatible(name: str, current: ir.Shape | None, given: tuple[int, ...]) -> None:
    if current is None:
        return
    if len(current) != len(given):
        raise InputShapeError(
            f"input '{name}' has rank {len(current)} {_dims_text(current)}; "
            f"--input-shape gives rank {len(given)} {list(given)}"
        )
    for axis, (have, want) in enumerate(zip(current, given)):
        if isinstance(have, int) and have != want:
            raise InputShapeError(
                f"input '{name}' has shape {_dims_text(current)}: dimension {axis} is fixed at {have}, "
                f"--input-shape gives {want}"
            )


def _check_keys(shapes: Mapping, inputs: list[ir.Value]) -> None:
    names = [v.name for v in inputs]
    for key in shapes:
        if key is None:
            if len(inputs) != 1:
                raise InputShapeError(
                    f"the model has {len(inputs)} inputs ({', '.join(names)}); "
                    "name each one: --input-shape NAME=dims"
                )
        elif key.startswith("#"):
            if not key[1:].isdigit() or int(key[1:]) >= len(inputs):
                raise InputShapeError(f"input {key} does not exist; the model has {len(inputs)} input(s): {', '.join(names)}")
        elif key not in names:
            raise InputShapeError(f"the model has no input named '{key}'; its inputs are: {', '.join(names)}")


def fix_input_shapes(model: ir.Model, shapes: Mapping[str | None, tuple[int, ...]] | None = None) -> ir.Model:
    """Set the graph inputs' shapes from `shapes` (in place) and return the model.

    Raises InputShapeError when a given shape contradicts the model, names an input the model
    does not have, or when an input is still dynamic afterwards.
    """
    shapes = shapes or {}
    graph = model.graph
    # Old exporters list initializers among the inputs; those are weights, not user inputs.
    inputs = [v for v in graph.inputs if not v.is_initializer()]
    _check_keys(shapes, inputs)

    changed = False
    for index, value in enumerate(inputs):
        given = _given_shape(shapes, index, value.name, len(inputs))
        if given is not None:
            _check_compatible(value.name, value.shape, given)
            if value.shape is None or tuple(value.shape) != given:
                value.shape = ir.Shape(given)
                changed = True
        if value.shape is None or not all(isinstance(d, int) for d in value.shape):
            what = "an unknown shape" if value.shape is None else f"dynamic shape {_dims_text(value.shape)}"
            raise InputShapeError(f"input '{value.name}' has {what}; pass {_suggestion(value.name, value.shape)}")

    if changed:
        # Intermediate values still carry the old symbolic dims; inference replaces them.
        infer_shapes_in_place(model)
    return model
