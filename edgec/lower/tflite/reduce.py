"""ReduceMean / ReduceMax / ReduceSum -> MEAN / REDUCE_MAX / SUM, axes remapped to the layout;
CumSum -> CUMSUM (position ids from a padding mask)."""

from __future__ import annotations

import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import static_shape
from edgec.lower.tflite import layout
from edgec.lower.tflite.common import attr, const_ints, input_at, normalize_axes, require_const
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.registry import NUMERIC, visitor

_REDUCERS = {"ReduceMean": "MEAN", "ReduceMax": "REDUCE_MAX", "ReduceSum": "SUM"}


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
@visitor("ReduceMax", "ReduceSum", check=_check_reduce)
def lower_reduce(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    axes = reduce_axes(node)
    if axes is None:
        ctx.alias(node.outputs[0], x)
        return
    perm = ctx.perm(x)
    keep = bool(attr(node, "keepdims", 1))
    out_perm = perm if keep else layout.drop_axes(perm, axes)
    out = ctx.define(node.outputs[0], out_perm)
    tfl_axes = sorted(layout.axis_in(perm, a) for a in axes)
    ctx.emit(_REDUCERS[node.op_type], [ctx.tensor(x, perm), ctx.int32(tfl_axes, "axes")], [out],
             schema.ReducerOptionsT(keepDims=keep))


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
