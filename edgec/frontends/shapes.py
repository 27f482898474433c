"""Parsing of user-given input shapes (`--input-shape x=1,3,224,224` or `1,3,224,224`)."""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from edgec.errors import InputShapeError

# name -> shape; the name None means "the model's only input".
InputShapes = dict[str | None, tuple[int, ...]]


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in re.split(r"[,x]", text.strip()))  # 1,3,224,224 or 1x3x224x224
    except ValueError:
        raise InputShapeError(f"--input-shape '{text}': expected integers like 1,3,224,224") from None
    if not dims or any(d <= 0 for d in dims):
        raise InputShapeError(f"--input-shape '{text}': every dimension must be a positive integer")
    return dims


def parse_input_shapes(specs: Sequence[str] | None) -> InputShapes:
    """['x=1,3,224,224', 'mask=1,16'] or ['1,3,224,224'] -> {name: shape}."""
    shapes: InputShapes = {}
    for spec in specs or ():
        name, sep, dims = spec.rpartition("=") if "=" in spec else (None, "", spec)
        key = name.strip() if sep else None
        if key in shapes:
            raise InputShapeError(f"--input-shape given twice for {key or 'the input'}")
        shapes[key] = parse_shape(dims)
    if None in shapes and len(shapes) > 1:
        raise InputShapeError("--input-shape: name every input (name=dims) when giving more than one")
    return shapes


def normalize_input_shapes(shapes: Mapping | Sequence | None) -> InputShapes:
    """Accept the API's forms: {name: shape}, [shape, ...] for positional inputs, or one shape."""
    if shapes is None:
        return {}
    if isinstance(shapes, str):  # the CLI's syntax: '1,3,224,224' or 'x=1,3,224,224;mask=1,16'
        return parse_input_shapes([p for p in re.split(r"[;\s]+", shapes.strip()) if p])
    try:
        if isinstance(shapes, Mapping):
            return {k: _dims(v) for k, v in shapes.items()}
        shapes = list(shapes)
        if shapes and all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in shapes) \
                and not all(isinstance(d, str) for d in shapes):
            return {None: _dims(shapes)}
        if all(isinstance(s, str) for s in shapes):  # ['x=1,3,8,8', 'mask=1,16'], as on the command line
            return parse_input_shapes(shapes)
        if len(shapes) == 1:
            return {None: _dims(shapes[0])}
        return {f"#{i}": _dims(s) for i, s in enumerate(shapes)}
    except (TypeError, ValueError, OverflowError):
        raise InputShapeError(f"input_shapes {shapes!r}: expected a shape like (1, 3, 224, 224), a list of "
                              "shapes, {name: shape}, or the string '1,3,224,224'") from None


def _dims(shape) -> tuple[int, ...]:
    if isinstance(shape, str):
        return parse_shape(shape)
    dims = tuple(shape)
    if not dims or any(isinstance(d, bool) or int(d) != d or int(d) <= 0 for d in dims):
        raise InputShapeError(f"input shape {list(dims)}: every dimension must be a positive integer")
    return tuple(int(d) for d in dims)


def shape_for(shapes: InputShapes, index: int, name: str, n_inputs: int) -> tuple[int, ...] | None:
    if name in shapes:
        return shapes[name]
    if f"#{index}" in shapes:
        return shapes[f"#{index}"]
    if None in shapes and n_inputs == 1:
        return shapes[None]
    return None
