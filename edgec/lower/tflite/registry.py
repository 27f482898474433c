"""The table of ONNX op visitors: for each op type, a `check` and a `lower`.

`check(node)` runs on every node before anything is built and returns why the node cannot be
lowered (or None), so one UnsupportedOpsError can list every problem at once. `lower(node,
ctx)` then emits the TFLite operators; it may assume its check passed.

`int8` says whether the visitor can lower the node with int8 tensors (TFLite has an int8
kernel and the visitor makes its constants and temporaries int8): True, or a check that
returns why this node cannot. Nodes that cannot stay float between DEQUANTIZE and QUANTIZE.

`dtypes` lists the element types a visitor takes for tensors computed at run time (float32
unless it says more: masks are bool, token ids int64). The supported-ops table
(edgec/supported_ops.py, docs/supported-ops.md, `edgec ops`) is generated from this
registry: a check's docstring is its condition text, so a new visitor shows up there by
registering, and describes its limits by documenting its check.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array, numpy_dtype, static_shape

Check = Callable[[ir.Node], "str | None"]
Lower = Callable[[ir.Node, "LoweringContext"], None]  # noqa: F821 (context imports us)


FLOAT = frozenset({"float32"})
# Element types for ops that move or compare data of any kind (masks, token ids, indices).
ANY_DTYPE = frozenset({"float32", "int64", "int32", "bool"})
# Arithmetic on position ids and mask sums (ADD, SUB, MUL have int32/int64 kernels).
NUMERIC = frozenset({"float32", "int64", "int32"})


@dataclasses.dataclass(frozen=True)
class Visitor:
    op_type: str
    lower: Lower
    check: Check
    int8: Check | None = None  # None: float only
    dtypes: frozenset[str] = FLOAT  # run-time tensor element types the visitor takes

    @property
    def module(self) -> str:
        return self.lower.__module__

    def conditions(self) -> str:
        """The node-level conditions as text (the check's docstring), "" when there are none."""
        return describe_check(self.check)

    def int8_conditions(self) -> str | None:
        """None: float only; "" int8 always; else the text of the int8 condition."""
        if self.int8 is None:
            return None
        return describe_check(self.int8)


def describe_check(check: Check) -> str:
    """A check's docstring as one line of text; "" for no check; a pointer to the code for an
    undocumented one (so an undescribed condition is visible in the table, not hidden)."""
    if check is _no_check:
        return ""
    doc = (check.__doc__ or "").strip()
    if not doc:
        return f"conditions checked in {check.__module__} ({getattr(check, '__name__', 'check')}), undocumented"
    first_paragraph = doc.split("\n\n")[0]
    return " ".join(first_paragraph.split())


VISITORS: dict[str, Visitor] = {}


def _no_check(node: ir.Node) -> str | None:
    return None


def visitor(*op_types: str, check: Check | None = None,
            int8: bool | Check = False, dtypes: frozenset[str] = FLOAT) -> Callable[[Lower], Lower]:
    """Register `lower` (and an optional `check`, whose docstring says what it requires) for
    ONNX op types in the default domain."""
    int8_check = _no_check if int8 is True else (int8 or None)

    def register(lower: Lower) -> Lower:
        for op in op_types:
            if op in VISITORS:
                raise ValueError(f"two TFLite visitors for {op}")
            VISITORS[op] = Visitor(op, lower, check or _no_check, int8_check, frozenset(dtypes))
        return lower

    return register


def check_node(node: ir.Node) -> str | None:
    """Why `node` cannot be lowered to TFLite, or None when it can."""
    if node.domain not in ("", "ai.onnx"):
        return f"custom domain '{node.domain}' has no TFLite builtin; export it with standard ONNX ops"
    v = VISITORS.get(node.op_type)
    if v is None:
        return "no TFLite lowering for this op; rewrite it with supported ops or use the tvm format"
    return _check_values(node, v) or v.check(node)


# Signature tensors: float32 activations, plus token ids / masks (int64, int32, bool).
SIGNATURE_DTYPES = ANY_DTYPE


def check_signature_value(value: ir.Value) -> str | None:
    """Why a graph input or output cannot be a TFLite signature tensor, or None."""
    dtype = numpy_dtype(value)
    if str(dtype) not in SIGNATURE_DTYPES:
        return (f"is {dtype}; the TFLite lowering takes {', '.join(sorted(SIGNATURE_DTYPES))} inputs and "
                "outputs")
    if static_shape(value) is None:
        dims = list(value.shape) if value.shape is not None else "unknown"
        return f"has dynamic or unknown shape {dims}; pass --input-shape"
    return None


def _check_values(node: ir.Node, v: Visitor) -> str | None:
    """Run-time tensors must have an element type the visitor takes (float32 unless it says
    more) and static shapes (the lowering's contract).

    Outputs nobody reads (Dropout's mask, MaxPool's indices) are never built, so they are
    not checked.
    """
    if node.op_type == "Constant":
        return None
    activations = [x for x in node.inputs if x is not None and const_array(x) is None]
    read_outputs = [x for x in node.outputs if x is not None and (x.uses() or x.is_graph_output())]
    for value in [*activations, *read_outputs]:
        dtype = numpy_dtype(value)
        if str(dtype) not in v.dtypes:
            takes = ", ".join(sorted(v.dtypes))
            if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
                return (f"value '{value.name}' is a {dtype} tensor computed at run time; TFLite's {node.op_type} "
                        f"lowering takes {takes} there (shapes, axes and indices must be constants: run "
                        "constant folding with static input shapes)")
            return f"value '{value.name}' is {dtype}; the TFLite {node.op_type} lowering takes {takes} tensors"
        if static_shape(value) is None:
            dims = list(value.shape) if value.shape is not None else "unknown"
            return f"value '{value.name}' has dynamic or unknown shape {dims}; pass --input-shape"
    return None
