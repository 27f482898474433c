"""Softmax -> SOFTMAX over the last axis; LayerNormalization decomposed (TFLite has none).

LayerNormalization becomes MEAN, SUB, MUL (square), MEAN, ADD eps, RSQRT, MUL, then the
scale and bias: every one an op XNNPACK delegates. Its axes are remapped to the layout
the input is held in, so it needs no TRANSPOSE either.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.lower.tflite import layout
from edgec.lower.tflite.common import attr, input_at
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.elementwise import operand
from edgec.lower.tflite.registry import visitor


@visitor("Softmax", int8=True)
def lower_softmax(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    rank = len(ctx.shape(x))
    axis = attr(node, "axis", -1) % rank
    perm = ctx.perm(x)
    if perm[-1] != axis:
        # SOFTMAX normalizes the last axis: move `axis` there, keep the others in their order.
        perm = tuple(p for p in perm if p != axis) + (axis,)
    out = ctx.define(node.outputs[0], perm)
    ctx.emit("SOFTMAX", [ctx.tensor(x, perm)], [out], schema.SoftmaxOptionsT(beta=1.0))


def _check_layer_norm(node: ir.Node) -> str | None:
    """the training outputs (mean, inverse std) are unused; decomposed into MEAN/SUB/MUL/RSQRT."""
    for extra in node.outputs[1:]:
        if extra is not None and (extra.uses() or extra.is_graph_output()):
            return f"its training output '{extra.name}' (mean or inverse std) is used"
    return None


@visitor("LayerNormalization", check=_check_layer_norm)
def lower_layer_norm(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    shape = ctx.shape(x)
    rank = len(shape)
    perm = ctx.perm(x)
    axes = list(range(attr(node, "axis", -1) % rank, rank))
    tfl_axes = ctx.int32(sorted(layout.axis_in(perm, a) for a in axes), "axes")
    full = layout.permute(shape, perm)
    reduced = [1 if p in axes else d for p, d in zip(perm, full)]
    keep = schema.ReducerOptionsT(keepDims=True)
    src = ctx.tensor(x, perm)

    mean = ctx.temp(reduced, hint="mean")
    ctx.emit("MEAN", [src, tfl_axes], [mean], keep)
    centered = ctx.temp(full, hint="centered")
    ctx.emit("SUB", [src, mean], [centered], schema.SubOptionsT())
    squared = ctx.temp(full, hint="squared")
    ctx.emit("MUL", [centered, centered], [squared], schema.MulOptionsT())
    var = ctx.temp(reduced, hint="variance")
    ctx.emit("MEAN", [squared, tfl_axes], [var], keep)
    var_eps = ctx.temp(reduced, hint="variance_eps")
    ctx.emit("ADD", [var, ctx.float32(attr(node, "epsilon", 1e-5), "epsilon")], [var_eps], schema.AddOptionsT())
    inv_std = ctx.temp(reduced, hint="inv_std")
    ctx.emit("RSQRT", [var_eps], [inv_std])

    scale, bias = input_at(node, 1), input_at(node, 2)
    steps = [("MUL", inv_std, schema.MulOptionsT)]
    scale_const = ctx.const(scale) if scale is not None else None
    if scale is not None and not (scale_const is not None and np.all(scale_const == 1)):
        steps.append(("MUL", operand(ctx, scale, rank, perm), schema.MulOptionsT))
    bias_const = ctx.const(bias) if bias is not None else None
    if bias is not None and not (bias_const is not None and np.all(bias_const == 0)):
        steps.append(("ADD", operand(ctx, bias, rank, perm), schema.AddOptionsT))
    out = ctx.define(node.outputs[0], perm)
    current = centered
    for i, (op, other, options) in enumerate(steps):
        dst = out if i == len(steps) - 1 else ctx.temp(full, hint=f"{op.lower()}{i}")
        ctx.emit(op, [current, other], [dst], options())
        current = dst

