"""ReduceMean / ReduceMax / ReduceMin / ReduceProd / ReduceSum -> MEAN / REDUCE_MAX / REDUCE_MIN /
REDUCE_PROD / SUM, axes remapped to the layout; the norms TFLite has no op for are composed:
ReduceSumSquare = SUM(MUL(x, x)), ReduceL2 = SQRT of that (timm's EdgeNeXt / XCiT normalise attention
with torch.linalg.vector_norm), ReduceL1 = SUM(ABS(x)); CumSum -> CUMSUM (position ids from a padding mask)."""

from __future__ import annotations

import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import static_shape
from edgec.lower.tflite import layout
from edgec.lower.tflite.common import attr, const_ints, input_at, normalize_axes, require_const
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.registry import NUMERIC, visitor

_REDUCERS = {"ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN", "ReduceProd": "REDUCE_PROD",
             "ReduceSum": "SUM", "ReduceSumSquare": "SUM", "ReduceL2": "SUM", "ReduceL1": "SUM"}
# Elementwise op before the SUM, and after it, for the composed norms.
_BEFORE = {"ReduceSumSquare": "MUL", "ReduceL2": "MUL", "ReduceL1": "ABS"}
_AFTER = {"ReduceL2": "SQRT"}


def reduce_axes(node: ir.Node) -> list[int] | None:
    """The reduced ONNX axes (normalized), or None when the node is a no-op."""
    rank = len(static_shape(node.inputs[0]))
    if input_at(node, 1) is not None:  # opset 18+ (ReduceSum since 13)
        axes = const_ints(node, 1)
    else:
        axes = list(attr(node, "axes", ()))
    if not axes:
        if attr(node, "noop_with_empty_axes", 0):
            return None
        axes = list(range(rank))
    return sorted(set(normalize_axes(axes, rank)))


def _check_reduce(node: ir.Node) -> str | None:
    """axes are constant (empty axes reduce every axis unless noop_with_empty_axes)."""
    return require_const(node, 1, "axes")


@visitor("ReduceMean", check=_check_reduce, int8=True)
@visitor("ReduceMax", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "ReduceL2", "ReduceL1",
         check=_check_reduce)
def lower_reduce(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    op = node.op_type
    axes = reduce_axes(node)
    perm = ctx.perm(x)
    src = ctx.tensor(x, perm)
    if op in _BEFORE:  # the elementwise part applies even when no axis is reduced (noop_with_empty_axes)
        before = ctx.temp_like(src, hint=_BEFORE[op].lower())
        ctx.emit(_BEFORE[op], [src, src] if _BEFORE[op] == "MUL" else [src], [before],
                 schema.MulOptionsT() if _BEFORE[op] == "MUL" else None)
        src = before
    if axes is None and op not in _BEFORE:
        ctx.alias(node.outputs[0], x)
        return
    keep = bool(attr(node, "keepdims", 1))
    out_perm = perm if keep or axes is None else layout.drop_axes(perm, axes)
    out = ctx.define(node.outputs[0], out_perm)
    after = _AFTER.get(op)
    if axes is None:  # ReduceL2 of nothing reduced is |x|: sqrt(x*x)
        ctx.emit(after or "RESHAPE", [src] if after else [src, ctx.int32(ctx.graph.shape(out))], [out])
        return
    tfl_axes = sorted(layout.axis_in(perm, a) for a in axes)
    summed = ctx.temp_like(src, ctx.graph.shape(out), hint="sum") if after else out
    ctx.emit(_REDUCERS[op], [src, ctx.int32(tfl_axes, "axes")], [summed], schema.ReducerOptionsT(keepDims=keep))
    if after:
        ctx.emit(after, [summed], [out])


def _check_cumsum(node: ir.Node) -> str | None:
    """constant axis."""
    return require_const(node, 1, "axis")


@visitor("CumSum", check=_check_cumsum, dtypes=NUMERIC)
def lower_cumsum(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    axis = const_ints(node, 1)[0] % len(perm)
    out = ctx.define(node.outputs[0], perm)
    ctx.emit("CUMSUM", [ctx.tensor(x, perm), ctx.int32(layout.axis_in(perm, axis), "axis")], [out],
             schema.CumsumOptionsT(exclusive=bool(attr(node, "exclusive", 0)), reverse=bool(attr(node, "reverse", 0))))
