"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool -> NHWC pools and means.

TFLite pools know only SAME and VALID. Other ONNX paddings (asymmetric pads, ceil_mode,
count_include_pad) become an explicit PAD and a VALID pool; for an average pool a
compile-time constant then rescales each output by kernel area / ONNX's divisor.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import static_shape
from edgec.lower.tflite import padding
from edgec.lower.tflite.activations import take_fused_activation
from edgec.lower.tflite.common import attr, require_rank
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.layout import NHWC
from edgec.lower.tflite.registry import visitor

# Max pooling's fallback pad value: the lowest float never wins a max, like ONNX's padding.
_MAX_POOL_PAD = float(np.finfo(np.float32).min)


def _check_pool(node: ir.Node) -> str | None:
    """1-D, 2-D or 3-D (float: 1-D via a unit axis, 3-D separably, dilations as padded taps); MaxPool's Indices output unused."""
    problem = require_rank(node, 4)
    if problem:
        return problem
    if any(d != 1 for d in attr(node, "dilations", (1, 1))):
        return f"dilations={list(attr(node, 'dilations'))}; TFLite pools have no dilation"
    if len(node.outputs) > 1 and node.outputs[1] is not None and node.outputs[1].uses():
        return "MaxPool's Indices output is used; TFLite's MAX_POOL_2D has none"
    return None


def replicate_edges(ctx: LoweringContext, src: int, spatial: list[tuple[int, int]]) -> int:
    """Pad H and W of an NHWC tensor by repeating its border rows and columns.

    For max pooling this equals ONNX's ignored padding whenever every window also covers the
    border it touches: the copies never exceed a value the window already holds. Built from
    SLICE and CONCATENATION, which XNNPACK runs (it leaves PADV2 to the CPU kernels).
    """
    for axis, (before, after) in zip((1, 2), spatial):
        if not before and not after:
            continue
        shape = list(ctx.graph.shape(src))
        first = _edge(ctx, src, axis, 0) if before else None
        last = _edge(ctx, src, axis, shape[axis] - 1) if after else None
        shape[axis] += before + after
        out = ctx.temp_like(src, shape, hint="edge_pad")
        ctx.emit("CONCATENATION", [first] * before + [src] + [last] * after, [out],
                 schema.ConcatenationOptionsT(axis=axis))
        src = out
    return src


def _edge(ctx: LoweringContext, src: int, axis: int, index: int) -> int:
    """The one-wide slice at `index` along `axis`."""
    shape = ctx.graph.shape(src)
    begin, size = [0] * len(shape), list(shape)
    begin[axis], size[axis] = index, 1
    edge = ctx.temp_like(src, size, hint="edge")
    ctx.emit("SLICE", [src, ctx.int32(begin, "begin"), ctx.int32(size, "size")], [edge])
    return edge


def _windows_touch_input(win: padding.Window, in_hw, out_hw) -> bool:
    """True when every window overlaps the real input (none lies wholly in the padding)."""
    return all(
        (out_hw[i] - 1) * win.strides[i] - win.begin[i] <= in_hw[i] - 1 and win.kernel[i] > win.begin[i]
        for i in range(2)
    )


def _pool(ctx: LoweringContext, node: ir.Node, op: str, pad_value: float | None):
    """Bring the input to NHWC and pad it as needed.

    Returns (padded input tensor, Pool2DOptionsT, the window, the explicit pads or None).
    """
    x = node.inputs[0]
    in_hw = ctx.shape(x)[2:]
    out_hw = ctx.shape(node.outputs[0])[2:]
    kernel = attr(node, "kernel_shape")
    win = padding.window(node, in_hw, kernel, out_hw)
    pad_mode, explicit = padding.choose(win, in_hw)
    if op == "AVERAGE_POOL_2D" and pad_mode == schema.Padding.SAME and attr(node, "count_include_pad", 0):
        # TFLite's SAME average excludes padding from the divisor; ONNX counts it here.
        pad_mode, explicit = schema.Padding.VALID, padding.explicit_pads(win, in_hw)
    src = ctx.tensor(x, NHWC)
    if explicit and op == "MAX_POOL_2D" and _windows_touch_input(win, in_hw, out_hw):
        src = replicate_edges(ctx, src, explicit)
    elif explicit:
        src = padding.pad_nhwc(ctx, src, explicit, pad_value)
    options = schema.Pool2DOptionsT(
        padding=pad_mode, strideH=win.strides[0], strideW=win.strides[1],
        filterHeight=kernel[0], filterWidth=kernel[1],
    )
    return src, options, win, explicit


@visitor("MaxPool", check=_check_pool, int8=True)
def lower_max_pool(node: ir.Node, ctx: LoweringContext) -> None:
    src, options, _, _ = _pool(ctx, node, "MAX_POOL_2D", _MAX_POOL_PAD)
    options.fusedActivationFunction, result = take_fused_activation(ctx, node.outputs[0])
    out = ctx.define(result, NHWC)
    ctx.emit("MAX_POOL_2D", [src], [out], options)


def _average_divisors(node: ir.Node, in_hw, out_hw, win: padding.Window) -> np.ndarray:
    """ONNX's divisor for each output position (onnxruntime's rule for partial windows)."""
    attr_win = padding.window(node, in_hw, win.kernel)
    include_pad = bool(attr(node, "count_include_pad", 0))
    counts = []
    for i in range(2):
        start = np.arange(out_hw[i]) * win.strides[i] - win.begin[i]
        stop = start + win.kernel[i]
        lo, hi = (-attr_win.begin[i], in_hw[i] + attr_win.end[i]) if include_pad else (0, in_hw[i])
        counts.append(np.minimum(stop, hi) - np.maximum(start, lo))
    return np.outer(counts[0], counts[1]).astype(np.float32)


def _divisor_fix(node: ir.Node) -> np.ndarray | None:
    """kernel area / ONNX's divisor per output position, when the pool needs an explicit PAD
    and ONNX's divisor differs from the area at some border (else None)."""
    x, y = node.inputs[0], node.outputs[0]
    in_hw, out_hw = static_shape(x)[2:], static_shape(y)[2:]
    win = padding.window(node, in_hw, attr(node, "kernel_shape"), out_hw)
    pad_mode, explicit = padding.choose(win, in_hw)
    if pad_mode == schema.Padding.SAME and attr(node, "count_include_pad", 0):
        explicit = padding.explicit_pads(win, in_hw)
    if not explicit:
        return None
    scale = win.kernel[0] * win.kernel[1] / _average_divisors(node, in_hw, out_hw, win)
    return None if np.allclose(scale, 1.0) else scale


def _int8_average_pool(node: ir.Node) -> str | None:
    """no border windows that need ONNX's include-count divisor."""
    if _divisor_fix(node) is not None:
        return "border windows need ONNX's divisor, which TFLite's int8 AVERAGE_POOL_2D cannot apply"
    return None


@visitor("AveragePool", check=_check_pool, int8=_int8_average_pool)
def lower_average_pool(node: ir.Node, ctx: LoweringContext) -> None:
    src, options, win, explicit = _pool(ctx, node, "AVERAGE_POOL_2D", 0.0)
    out = ctx.define(node.outputs[0], NHWC)
    # The VALID pool over the zero-padded input divides by the kernel area; ONNX divides by
    # the count of cells it includes, which differs at the borders.
    scale = _divisor_fix(node)
    if scale is None:
        ctx.emit("AVERAGE_POOL_2D", [src], [out], options)
        return
    out_hw = ctx.shape(node.outputs[0])[2:]
    pooled = ctx.temp(ctx.graph.shape(out), hint="area_mean")
    ctx.emit("AVERAGE_POOL_2D", [src], [pooled], options)
    ctx.emit("MUL", [pooled, ctx.float32(scale.reshape(1, *out_hw, 1), "divisor_fix")], [out], schema.MulOptionsT())


def _check_global_pool(node: ir.Node) -> str | None:
    """4-D input."""
    return require_rank(node, 4)


@visitor("GlobalAveragePool", check=_check_global_pool, int8=True)
@visitor("GlobalMaxPool", check=_check_global_pool)
def lower_global_pool(node: ir.Node, ctx: LoweringContext) -> None:
    # MEAN over H, W of NHWC with keep_dims is XNNPACK's global average pooling.
    op = "MEAN" if node.op_type == "GlobalAveragePool" else "REDUCE_MAX"
    out = ctx.define(node.outputs[0], NHWC)
    ctx.emit(op, [ctx.tensor(node.inputs[0], NHWC), ctx.int32([1, 2], "axes")], [out],
             schema.ReducerOptionsT(keepDims=True))

