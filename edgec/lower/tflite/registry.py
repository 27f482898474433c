"""The table of ONNX op visitors: for each op type, a `check` and a `lower`.

`check(node)` runs on every node before anything is built and returns why the node cannot be
lowered (or None), so one UnsupportedOpsError can list every problem at once. `lower(node,
ctx)` then emits the TFLite operators; it may assume its check passed.

`int8` says whether the visitor can lower the node with int8 tensors (TFLite has an int8
kernel and the visitor makes its constants and temporaries int8): True, or a check that
returns why this node cannot. Nodes that cannot stay float between DEQUANTIZE and QUANTIZE.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array, numpy_dtype, static_shape

Check = Callable[[ir.Node], "str | None"]
Lower = Callable[[ir.Node, "LoweringContext"], None]  # noqa: F821 (context imports us)


@dataclasses.dataclass(frozen=True)
class Visitor:
    op_type: str
    lower: Lower
    check: Check
    int8: Check | None = None  # None: float only



VISITORS: dict[str, Visitor] = {}


def _no_check(node: ir.Node) -> str | None:
    return None


def visitor(*op_types: str, check: Check | None = None,
            int8: bool | Check = False) -> Callable[[Lower], Lower]:
    """Register `lower` (and an optional `check`) for ONNX op types in the default domain."""
    int8_check = _no_check if int8 is True else (int8 or None)

    def register(lower: Lower) -> Lower:
        for op in op_types:
            if op in VISITORS:
                raise ValueError(f"two TFLite visitors for {op}")
            VISITORS[op] = Visitor(op, lower, check or _no_check, int8_check)
        return lower

    return register


def check_node(node: ir.Node) -> str | None:
    """Why `node` cannot be lowered to TFLite, or None when it can."""
    if node.domain not in ("", "ai.onnx"):
        return f"custom domain '{node.domain}' has no TFLite builtin; export it with standard ONNX ops"
    v = VISITORS.get(node.op_type)
    if v is None:
        return "no TFLite lowering for this op; rewrite it with supported ops or use the tvm format"
    return _check_values(node) or v.check(node)


def check_signature_value(value: ir.Value) -> str | None:
    """Why a graph input or output cannot be a TFLite signature tensor, or None."""
    if numpy_dtype(value) != np.float32:
        return f"is {numpy_dtype(value)}; the TFLite fp32 lowering takes float32 inputs and outputs"
    if static_shape(value) is None:
        dims = list(value.shape) if value.shape is not None else "unknown"
        return f"has dynamic or unknown shape {dims}; pass --input-shape"
    return None


def _check_values(node: ir.Node) -> str | None:
    """Activations must be float32 with static shapes (the fp32 lowering's contract).

    Outputs nobody reads (Dropout's mask, MaxPool's indices) are never built, so they are
    not checked.
    """
    if node.op_type == "Constant":
        return None
    activations = [v for v in node.inputs if v is not None and const_array(v) is None]
    read_outputs = [v for v in node.outputs if v is not None and (v.uses() or v.is_graph_output())]
    for v in [*activations, *read_outputs]:
        dtype = numpy_dtype(v)
        if dtype != np.float32:
            if v.is_graph_input():
                return f"graph input '{v.name}' is {dtype}; the TFLite fp32 lowering takes float32 inputs"
            if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
                return (f"value '{v.name}' is a {dtype} tensor computed at run time; shapes, axes and "
                        "indices must be constants here: run constant folding with static input shapes")
            return f"value '{v.name}' is {dtype}; the TFLite fp32 lowering takes float32 tensors"
        if static_shape(v) is None:
            dims = list(v.shape) if v.shape is not None else "unknown"
            return f"value '{v.name}' has dynamic or unknown shape {dims}; pass --input-shape"
    return None
