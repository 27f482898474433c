"""Comparisons, boolean logic, Where, IsNaN/IsInf and Cast: the attention-mask arithmetic.

transformers builds its padding mask at run time from the int64 `attention_mask` input:
Cast to bool, And with a constant causal/bidirectional pattern, Where(mask, 0, finfo.min),
and after the softmax Where(IsNaN(p), 0, p) for fully masked rows. Each of these is one
TFLite builtin on the CPU kernels (XNNPACK takes none of them; they touch only the
[batch, 1, seq, seq] mask and one guard per attention, not the matmuls). Like the
arithmetic ops, they keep the layout their operands are held in.

IsNaN(x) is NOT_EQUAL(x, x): NaN is the one float unequal to itself.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import numpy_dtype
from edgec.lower.tflite.builder import tensor_type
from edgec.lower.tflite.common import attr
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.elementwise import operand, output_layout
from edgec.lower.tflite.registry import ANY_DTYPE, visitor

_COMPARISONS = {
    "Equal": "EQUAL",
    "Less": "LESS",
    "LessOrEqual": "LESS_EQUAL",
    "Greater": "GREATER",
    "GreaterOrEqual": "GREATER_EQUAL",
}
_LOGICAL = {"And": "LOGICAL_AND", "Or": "LOGICAL_OR", "Xor": "NOT_EQUAL"}  # bool xor is inequality

# Element types TFLite's CAST converts between here (ONNX Cast's others have no use on a phone).
_CAST_TYPES = ("float32", "int32", "int64", "bool")
_FLOAT_TO_BOOL = frozenset({"float32", "bool"})


def _emit_broadcasting(ctx: LoweringContext, node: ir.Node, op: str, options=None) -> None:
    perm = output_layout(ctx, node)
    inputs = [operand(ctx, v, len(perm), perm) for v in node.inputs]
    out = ctx.define(node.outputs[0], perm)
    ctx.emit(op, inputs, [out], options)


def _check_comparison(node: ir.Node) -> str | None:
    """float32, int32 or int64 operands (Equal also bool), numpy broadcasting."""
    dtype = str(numpy_dtype(node.inputs[0]))
    if dtype == "bool" and node.op_type != "Equal":
        return f"{node.op_type} of bool tensors; TFLite compares numbers"
    return None


@visitor(*_COMPARISONS, check=_check_comparison, dtypes=ANY_DTYPE)
def lower_comparison(node: ir.Node, ctx: LoweringContext) -> None:
    _emit_broadcasting(ctx, node, _COMPARISONS[node.op_type])


@visitor(*_LOGICAL, dtypes=frozenset({"bool"}))
def lower_logical(node: ir.Node, ctx: LoweringContext) -> None:
    _emit_broadcasting(ctx, node, _LOGICAL[node.op_type])


@visitor("Not", dtypes=frozenset({"bool"}))
def lower_not(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    out = ctx.define(node.outputs[0], perm)
    ctx.emit("LOGICAL_NOT", [ctx.tensor(x, perm)], [out])


@visitor("Where", dtypes=ANY_DTYPE)
def lower_where(node: ir.Node, ctx: LoweringContext) -> None:
    # SELECT_V2 broadcasts all three operands as numpy does (SELECT would not).
    _emit_broadcasting(ctx, node, "SELECT_V2", schema.SelectV2OptionsT())


@visitor("IsNaN", dtypes=_FLOAT_TO_BOOL)
def lower_isnan(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    src = ctx.tensor(x, perm)
    out = ctx.define(node.outputs[0], perm)
    ctx.emit("NOT_EQUAL", [src, src], [out])


@visitor("IsInf", dtypes=_FLOAT_TO_BOOL)
def lower_isinf(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    src = ctx.tensor(x, perm)
    out = ctx.define(node.outputs[0], perm)
    signs = [s for s, flag in ((np.inf, "detect_positive"), (-np.inf, "detect_negative")) if attr(node, flag, 1)]
    if not signs:  # neither sign detected: all false
        ctx.emit("LESS", [src, ctx.float32(-np.inf, "neg_inf")], [out])
        return
    if len(signs) == 1:
        ctx.emit("EQUAL", [src, ctx.float32(signs[0], "inf")], [out])
        return
    magnitude = ctx.temp(ctx.graph.shape(src), hint="abs")
    ctx.emit("ABS", [src], [magnitude])
    ctx.emit("EQUAL", [magnitude, ctx.float32(np.inf, "inf")], [out])


def _check_cast(node: ir.Node) -> str | None:
    """from and to float32, int32, int64 or bool (float to int truncates toward zero, like ONNX)."""
    to = ir.DataType(attr(node, "to")).numpy() if attr(node, "to") is not None else None
    src = numpy_dtype(node.inputs[0])
    for what, dtype in (("from", src), ("to", to)):
        if dtype is None or str(np.dtype(dtype)) not in _CAST_TYPES:
            return f"Cast {what} {dtype}; TFLite's CAST here converts between {', '.join(_CAST_TYPES)}"
    return None


@visitor("Cast", check=_check_cast, dtypes=ANY_DTYPE)
def lower_cast(node: ir.Node, ctx: LoweringContext) -> None:
    x, y = node.inputs[0], node.outputs[0]
    perm = ctx.perm(x)
    if numpy_dtype(x) == numpy_dtype(y):
        ctx.alias(y, x)
        return
    src = ctx.tensor(x, perm)
    out = ctx.define(y, perm)
    ctx.emit("CAST", [src], [out], schema.CastOptionsT(inDataType=tensor_type(numpy_dtype(x)),
                                                       outDataType=tensor_type(numpy_dtype(y))))
