"""Small helpers every op visitor uses: attributes, constant inputs, shared checks."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array, static_shape


def attr(node: ir.Node, name: str, default: Any = None) -> Any:
    a = node.attributes.get(name)
    if a is None:
        return default
    value = a.value
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return value


def input_at(node: ir.Node, index: int) -> ir.Value | None:
    """The node's input `index`, or None when absent or given as the empty name."""
    if index >= len(node.inputs):
        return None
    return node.inputs[index]


def const_input(node: ir.Node, index: int) -> np.ndarray | None:
    return const_array(input_at(node, index))


def const_ints(node: ir.Node, index: int) -> list[int] | None:
    array = const_input(node, index)
    return None if array is None else [int(v) for v in np.asarray(array).reshape(-1)]


def normalize_axes(axes: Sequence[int], rank_: int) -> list[int]:
    return [int(a) % rank_ if rank_ else 0 for a in axes]


def first_problem(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


def require_const(node: ir.Node, index: int, what: str) -> str | None:
    """A reason when input `index` is present but not a constant."""
    value = input_at(node, index)
    if value is not None and const_array(value) is None:
        return f"{what} (input {index}, '{value.name}') must be a constant; run constant folding first"
    return None


def require_rank(node: ir.Node, *ranks: int) -> str | None:
    shape = static_shape(node.inputs[0])
    if shape is None or len(shape) not in ranks:
        expected = " or ".join(f"{r}-D" for r in ranks)
        return f"input must be {expected}, got shape {list(shape) if shape is not None else '?'}"
    return None

