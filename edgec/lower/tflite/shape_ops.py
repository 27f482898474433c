"""Ops that move data without arithmetic: Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
Concat, Split, Slice, Expand, Pad, Constant. They take tensors of any element type (masks, ids).

ONNX Transpose emits nothing: it composes into the layout the value is held in. A reshape
whose merged or split runs of axes are contiguous in the held layout keeps that layout (the
bytes do not move): Flatten after global pooling, or (N, C, H, W) -> (N, C, H*W) of an NHWC
tensor, is one RESHAPE and no TRANSPOSE.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import static_shape
from edgec.lower.tflite import layout, quantized
from edgec.lower.tflite.common import (
    attr, const_input, const_ints, first_problem, normalize_axes, require_const,
)
from edgec.lower.tflite.context import Held, LoweringContext
from edgec.lower.tflite.elementwise import output_layout
from edgec.lower.tflite.padding import pad_with
from edgec.lower.tflite.registry import ANY_DTYPE, visitor


def reshape_to(ctx: LoweringContext, src: ir.Value, dst: ir.Value) -> None:
    """Hold `dst` (same elements as `src`, another shape) with one RESHAPE at most."""
    in_shape, out_shape = ctx.shape(src), ctx.shape(dst)
    perm = ctx.perm(src)
    out_perm = layout.reshape_layout(in_shape, perm, out_shape)
    if out_perm is not None:
        # The held bytes are already in an order of the output's axes: no TRANSPOSE.
        src_tensor = ctx.tensor(src, perm)
    else:
        out_perm = layout.identity(len(out_shape))
        src_tensor = ctx.tensor(src)
    tfl_shape = layout.permute(out_shape, out_perm)
    if tuple(ctx.graph.shape(src_tensor)) == tuple(tfl_shape) and not ctx.graph.is_const(src_tensor):
        ctx.hold(dst, Held(src_tensor, out_perm))
        return
    out = ctx.define(dst, out_perm)
    ctx.emit("RESHAPE", [src_tensor, ctx.int32(tfl_shape)], [out])


def _check_reshape(node: ir.Node) -> str | None:
    """Reshape's shape and Squeeze/Unsqueeze's axes are constants."""
    if node.op_type == "Reshape":
        return require_const(node, 1, "the shape")
    if node.op_type in ("Squeeze", "Unsqueeze"):
        return require_const(node, 1, "axes")
    return None


@visitor("Reshape", "Flatten", "Squeeze", "Unsqueeze", check=_check_reshape, int8=True, dtypes=ANY_DTYPE)
def lower_reshape(node: ir.Node, ctx: LoweringContext) -> None:
    # The output's static shape says everything; axes/shape inputs were checked constant.
    reshape_to(ctx, node.inputs[0], node.outputs[0])


@visitor("Transpose", int8=True, dtypes=ANY_DTYPE)
def lower_transpose(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    rank = len(ctx.shape(x))
    onnx_perm = attr(node, "perm", tuple(reversed(range(rank))))
    held = ctx.held(x)
    # out = x.transpose(p) and t = x.transpose(held.perm), so t = out.transpose(p^-1 o held.perm).
    inv = layout.inverse(onnx_perm)
    ctx.hold(node.outputs[0], Held(held.tensor, tuple(inv[a] for a in held.perm)))


@visitor("Constant")
def lower_constant(node: ir.Node, ctx: LoweringContext) -> None:
    # Constants become TFLite tensors where they are used, in the layout each use needs.
    return None


@visitor("Concat", int8=True, dtypes=ANY_DTYPE)
def lower_concat(node: ir.Node, ctx: LoweringContext) -> None:
    perm = output_layout(ctx, node)
    axis = attr(node, "axis") % len(perm)
    out = ctx.define(node.outputs[0], perm)
    inputs = [_concat_input(ctx, v, perm, ctx.tensor_params(out)) for v in node.inputs]
    ctx.emit("CONCATENATION", inputs, [out],
             schema.ConcatenationOptionsT(axis=layout.axis_in(perm, axis)))


def _concat_input(ctx: LoweringContext, value: ir.Value, perm, params) -> int:
    """An operand of CONCATENATION; int8 concatenation copies bytes, so a constant joins on
    the output's grid (what the QDQ graph computes: its real values quantized once more)."""
    array = ctx.const(value)
    if params is None or array is None:
        return ctx.tensor(value, perm)
    data = quantized.quantize_value(np.ascontiguousarray(array.transpose(perm)), params)
    return ctx.const_tensor(data, value.name, quantization=quantized.per_tensor(params))


def split_sizes(node: ir.Node) -> list[int]:
    shape = static_shape(node.inputs[0])
    axis = attr(node, "axis", 0) % len(shape)
    sizes = const_ints(node, 1)
    if sizes is not None:
        return sizes
    if "split" in node.attributes:  # before opset 13
        return list(attr(node, "split"))
    # Opset 18: num_outputs chunks of ceil(dim / n), the last one possibly smaller.
    n = len(node.outputs)
    chunk = -(-shape[axis] // n)
    return [min(chunk, shape[axis] - i * chunk) for i in range(n)]


def _check_split(node: ir.Node) -> str | None:
    """split sizes are constant."""
    return require_const(node, 1, "split sizes")


@visitor("Split", check=_check_split, int8=True, dtypes=ANY_DTYPE)
def lower_split(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    axis = layout.axis_in(perm, attr(node, "axis", 0) % len(perm))
    sizes = split_sizes(node)
    outs = [ctx.define(v, perm) for v in node.outputs]
    src = ctx.tensor(x, perm)
    if len(set(sizes)) == 1:
        ctx.emit("SPLIT", [ctx.int32(axis, "axis"), src], outs, schema.SplitOptionsT(numSplits=len(outs)))
        return
    # Unequal parts: one SLICE each (XNNPACK delegates SLICE, not SPLIT_V).
    shape = layout.permute(ctx.shape(x), perm)
    start = 0
    for dst, size in zip(outs, sizes):
        begin = [0] * len(shape)
        extent = list(shape)
        begin[axis], extent[axis] = start, size
        ctx.emit("SLICE", [src, ctx.int32(begin, "begin"), ctx.int32(extent, "size")], [dst])
        start += size


def slice_bounds(node: ir.Node) -> list[tuple[int, int, int]]:
    """Per ONNX axis (start, stop, step), clamped as the ONNX spec clamps them."""
    shape = static_shape(node.inputs[0])
    rank = len(shape)
    starts, ends = const_ints(node, 1), const_ints(node, 2)
    axes = const_ints(node, 3)
    axes = list(range(len(starts))) if axes is None else normalize_axes(axes, rank)
    steps = const_ints(node, 4) or [1] * len(starts)
    bounds = [(0, d, 1) for d in shape]
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = shape[axis]
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        bounds[axis] = (start, end, step)
    return bounds


def _check_slice(node: ir.Node) -> str | None:
    """starts, ends, axes and steps are constants; no step of 0."""
    problem = first_problem(require_const(node, 1, "starts"), require_const(node, 2, "ends"),
                            require_const(node, 3, "axes"), require_const(node, 4, "steps"))
    if problem:
        return problem
    if any(s == 0 for s in const_ints(node, 4) or []):
        return "a step of 0"
    return None


@visitor("Slice", check=_check_slice, int8=True, dtypes=ANY_DTYPE)
def lower_slice(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    bounds = layout.permute(slice_bounds(node), perm)
    src = ctx.tensor(x, perm)
    out = ctx.define(node.outputs[0], perm)
    if all(step == 1 for _, _, step in bounds):
        sizes = [stop - start for start, stop, _ in bounds]
        ctx.emit("SLICE", [src, ctx.int32([b[0] for b in bounds], "begin"), ctx.int32(sizes, "size")], [out])
        return
    # A negative step that runs past index 0 has no representable end: the end mask says "to the edge".
    end_mask = sum(1 << i for i, (_, stop, step) in enumerate(bounds) if step < 0 and stop < 0)
    ends = [0 if (step < 0 and stop < 0) else stop for _, stop, step in bounds]
    ctx.emit("STRIDED_SLICE",
             [src, ctx.int32([b[0] for b in bounds], "begin"), ctx.int32(ends, "end"),
              ctx.int32([b[2] for b in bounds], "strides")],
             [out], schema.StridedSliceOptionsT(endMask=end_mask))


_PAD_MODES = ("constant", "reflect")


def _check_pad(node: ir.Node) -> str | None:
    """constant pads (no negative ones) and value; mode 'constant' or 'reflect'."""
    problem = first_problem(require_const(node, 1, "pads"), require_const(node, 2, "constant_value"),
                            require_const(node, 3, "axes"))
    if problem:
        return problem
    mode = attr(node, "mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in _PAD_MODES:
        return f"mode='{mode}'; TFLite pads with a constant (PAD) or by reflection (MIRROR_PAD)"
    if any(p < 0 for p in const_ints(node, 1)):
        return "negative pads (cropping); use Slice"
    return None


def pad_widths(node: ir.Node) -> list[tuple[int, int]]:
    rank = len(static_shape(node.inputs[0]))
    pads = const_ints(node, 1)
    axes = const_ints(node, 3)
    axes = list(range(rank)) if axes is None else normalize_axes(axes, rank)
    widths = [(0, 0)] * rank
    for i, a in enumerate(axes):
        widths[a] = (pads[i], pads[i + len(axes)])
    return widths


@visitor("Pad", check=_check_pad, int8=True)
def lower_pad(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    paddings = ctx.int32(layout.permute(pad_widths(node), perm), "paddings")
    src = ctx.tensor(x, perm)
    out = ctx.define(node.outputs[0], perm)
    mode = attr(node, "mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode == "reflect":
        ctx.emit("MIRROR_PAD", [src, paddings], [out], schema.MirrorPadOptionsT(mode=schema.MirrorPadMode.REFLECT))
        return
    value = const_input(node, 2)
    pad_with(ctx, src, paddings, out, 0.0 if value is None else float(value))



def _check_expand(node: ir.Node) -> str | None:
    """constant shape."""
    return require_const(node, 1, "the shape")


@visitor("Expand", check=_check_expand, dtypes=ANY_DTYPE)
def lower_expand(node: ir.Node, ctx: LoweringContext) -> None:
    # BROADCAST_TO wants the input at the output's rank: align it first (bytes unchanged).
    x, y = node.inputs[0], node.outputs[0]
    out_shape = ctx.shape(y)
    src = ctx.tensor(x)
    shape = ctx.shape(x)
    if len(shape) < len(out_shape):
        aligned = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
        reshaped = ctx.temp_like(src, aligned, hint="aligned")
        ctx.emit("RESHAPE", [src, ctx.int32(aligned)], [reshaped])
        src, shape = reshaped, aligned
    if tuple(shape) == tuple(out_shape):
        ctx.hold(y, Held(src, layout.identity(len(out_shape))))
        return
    out = ctx.define(y)
    # Version 1 is the flex op; the builtin kernel registers versions 2 and up.
    ctx.emit("BROADCAST_TO", [src, ctx.int32(out_shape)], [out], schema.BroadcastToOptionsT(), version=2)
