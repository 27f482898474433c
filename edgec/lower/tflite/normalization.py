"""Softmax -> SOFTMAX over the last axis; Layer/Group/InstanceNormalization decomposed (TFLite has none).

LayerNormalization becomes MEAN, SUB, MUL (square), MEAN, ADD eps, RSQRT, MUL, then the
scale and bias: every one an op XNNPACK delegates. Its axes are remapped to the layout
the input is held in, so it needs no TRANSPOSE either.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import const_array, static_shape
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
    """decomposed into MEAN/SUB/MUL/RSQRT (its mean and inverse-std outputs too, when read)."""
    return None


def _read(value: ir.Value | None) -> bool:
    return value is not None and (bool(value.uses()) or value.is_graph_output())


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

    extras = list(node.outputs[1:3]) + [None] * (3 - len(node.outputs))
    mean = ctx.define(extras[0], perm) if _read(extras[0]) else ctx.temp(reduced, hint="mean")
    ctx.emit("MEAN", [src, tfl_axes], [mean], keep)
    centered = ctx.temp(full, hint="centered")
    ctx.emit("SUB", [src, mean], [centered], schema.SubOptionsT())
    squared = ctx.temp(full, hint="squared")
    ctx.emit("MUL", [centered, centered], [squared], schema.MulOptionsT())
    var = ctx.temp(reduced, hint="variance")
    ctx.emit("MEAN", [squared, tfl_axes], [var], keep)
    var_eps = ctx.temp(reduced, hint="variance_eps")
    ctx.emit("ADD", [var, ctx.float32(attr(node, "epsilon", 1e-5), "epsilon")], [var_eps], schema.AddOptionsT())
    inv_std = ctx.define(extras[1], perm) if _read(extras[1]) else ctx.temp(reduced, hint="inv_std")
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



def _check_group_norm(node: ir.Node) -> str | None:
    """constant scale and bias (per channel; opset-18 per-group ones are upgraded), channels divisible by num_groups; decomposed into MEAN/SUB/MUL/RSQRT."""
    channels = static_shape(node.inputs[0])[1]
    groups = channels if node.op_type == "InstanceNormalization" else attr(node, "num_groups", 0)
    if groups <= 0 or channels % groups:
        return f"num_groups={groups} does not divide the {channels} channels"
    for index, what in ((1, "scale"), (2, "bias")):
        value = input_at(node, index)
        if value is None or const_array(value) is None:
            return f"{what} (input {index}) must be a constant; run constant folding first"
        if const_array(value).size != channels:
            return f"{what} has {const_array(value).size} values for {channels} channels"
    return None


@visitor("GroupNormalization", "InstanceNormalization", check=_check_group_norm)
def lower_group_norm(node: ir.Node, ctx: LoweringContext) -> None:
    """Statistics over each group of channels and all spatial positions, in the layout the
    input is held in: channels last (N, S..., C) -> (N, S, G, C/G), reduced over axes 1 and 3;
    else (N, C, S...) -> (N, G, C/G * S), reduced over axis 2. Then scale and bias per channel."""
    x = node.inputs[0]
    shape = ctx.shape(x)
    rank = len(shape)
    channels = shape[1]
    groups = channels if node.op_type == "InstanceNormalization" else attr(node, "num_groups")
    spatial = int(np.prod(shape[2:]))
    held = ctx.perm(x)
    channels_last = rank > 2 and held[0] == 0 and held[-1] == 1
    perm = held if channels_last else layout.identity(rank)
    full = layout.permute(shape, perm)
    if channels_last:
        grouped, axes, per_channel = [shape[0], spatial, groups, channels // groups], [1, 3], [channels]
    else:
        grouped, axes, per_channel = [shape[0], groups, channels // groups * spatial], [2], [1, channels] + [1] * (rank - 2)
    reduced = [1 if i in axes else d for i, d in enumerate(grouped)]
    keep = schema.ReducerOptionsT(keepDims=True)
    tfl_axes = ctx.int32(axes, "axes")

    src = ctx.temp(grouped, hint="grouped")
    ctx.emit("RESHAPE", [ctx.tensor(x, perm), ctx.int32(grouped)], [src])
    mean = ctx.temp(reduced, hint="mean")
    ctx.emit("MEAN", [src, tfl_axes], [mean], keep)
    centered = ctx.temp(grouped, hint="centered")
    ctx.emit("SUB", [src, mean], [centered], schema.SubOptionsT())
    squared = ctx.temp(grouped, hint="squared")
    ctx.emit("MUL", [centered, centered], [squared], schema.MulOptionsT())
    var = ctx.temp(reduced, hint="variance")
    ctx.emit("MEAN", [squared, tfl_axes], [var], keep)
    var_eps = ctx.temp(reduced, hint="variance_eps")
    ctx.emit("ADD", [var, ctx.float32(attr(node, "epsilon", 1e-5), "epsilon")], [var_eps], schema.AddOptionsT())
    inv_std = ctx.temp(reduced, hint="inv_std")
    ctx.emit("RSQRT", [var_eps], [inv_std])
    normalized = ctx.temp(grouped, hint="normalized")
    ctx.emit("MUL", [centered, inv_std], [normalized], schema.MulOptionsT())
    ungrouped = ctx.temp(full, hint="ungrouped")
    ctx.emit("RESHAPE", [normalized, ctx.int32(full)], [ungrouped])
    scaled = ctx.temp(full, hint="scaled")
    scale = ctx.float32(const_array(input_at(node, 1)).reshape(per_channel), "scale")
    ctx.emit("MUL", [ungrouped, scale], [scaled], schema.MulOptionsT())
    bias = ctx.float32(const_array(input_at(node, 2)).reshape(per_channel), "bias")
    ctx.emit("ADD", [scaled, bias], [ctx.define(node.outputs[0], perm)], schema.AddOptionsT())


def _check_batch_norm(node: ir.Node) -> str | None:
    """inference mode; constant scale, bias, mean and variance (one after a conv is folded into it
    first; this lowers the others, e.g. after a Concat)."""
    if attr(node, "training_mode", 0):
        return "training_mode=1; export the model in eval mode"
    for i, what in enumerate(("scale", "bias", "mean", "variance"), start=1):
        if const_array(input_at(node, i)) is None:
            return f"its {what} (input {i}) is not a constant"
    if any(_read(v) for v in node.outputs[1:]):
        return "its running mean/variance outputs are used (training)"
    return None


@visitor("BatchNormalization", check=_check_batch_norm)
def lower_batch_norm(node: ir.Node, ctx: LoweringContext) -> None:
    # y = x * a + c per channel (axis 1), a = scale / sqrt(var + eps), c = bias - mean * a.
    x = node.inputs[0]
    scale, bias, mean, var = (const_array(node.inputs[i]).astype(np.float64) for i in range(1, 5))
    a = scale / np.sqrt(var + float(attr(node, "epsilon", 1e-5)))
    c = bias - mean * a
    rank = len(ctx.shape(x))
    per_channel = (-1,) + (1,) * (rank - 2)
    perm = ctx.perm(x)
    out = ctx.define(node.outputs[0], perm)
    scaled = ctx.temp(ctx.graph.shape(out), hint="scaled")
    a_t = ctx.const_tensor(layout.const_in_layout(a.astype(np.float32).reshape(per_channel), rank, perm), "bn_scale")
    c_t = ctx.const_tensor(layout.const_in_layout(c.astype(np.float32).reshape(per_channel), rank, perm), "bn_shift")
    ctx.emit("MUL", [ctx.tensor(x, perm), a_t], [scaled], schema.MulOptionsT())
    ctx.emit("ADD", [scaled, c_t], [out], schema.AddOptionsT())
