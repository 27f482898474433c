"""Conv -> CONV_2D / DEPTHWISE_CONV_2D, ConvTranspose -> TRANSPOSE_CONV, all NHWC.

Weights are rearranged at compile time: ONNX OIHW becomes OHWI (conv, grouped conv:
I = C/groups), 1HWO (depthwise) or OHWI from IOHW (transposed conv). In int8 the weights
are the QDQ graph's integers with per-output-channel scales (quantized_dimension 0 for
OHWI, 3 for depthwise 1HWO) and the bias is int32 on input scale x weight scale.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import static_shape
from edgec.lower.tflite import padding, quantized
from edgec.lower.tflite.activations import take_fused_activation
from edgec.lower.tflite.common import attr, const_input, first_problem, require_const, require_rank
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.layout import NHWC
from edgec.lower.tflite.registry import visitor


def _check_conv(node: ir.Node) -> str | None:
    """1-D (float, via a unit axis) or 2-D, constant weight and bias, group divides the channels."""
    problem = first_problem(
        require_rank(node, 4),
        require_const(node, 1, "the weight"),
        require_const(node, 2, "the bias"),
    )
    if problem:
        return problem
    w = const_input(node, 1)
    if w.ndim != 4:
        return f"weight has shape {list(w.shape)}; only 2-D convolutions are lowered"
    channels = static_shape(node.inputs[0])[1]
    group = attr(node, "group", 1)
    if channels % group or w.shape[0] % group or w.shape[1] * group != channels:
        return f"group={group} does not divide {channels} input and {w.shape[0]} output channels"
    return None


# ONNX weight layout -> TFLite filter layout.
_OHWI_FROM_OIHW = (0, 2, 3, 1)
_1HWO_FROM_O1HW = (1, 2, 3, 0)
_OHWI_FROM_IOHW = (1, 2, 3, 0)


def _filter_and_bias(ctx: LoweringContext, node: ir.Node, perm: tuple[int, ...], channels: int,
                     hint: str, int4: bool = True) -> tuple[int, int]:
    """The filter stored with `perm` and the bias: int8 (or int4) / int32 in an integer node,
    else float. `int4`: whether the TFLite kernel reads int4 filters."""
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    if ctx.quantized_const(w) is not None:
        return ctx.quantized_weights(w, perm, int4=int4), quantized.bias_tensor(ctx, b, x, w, channels)
    bias = const_input(node, 2)
    bias = np.zeros(channels, np.float32) if bias is None else bias.astype(np.float32)
    weights = const_input(node, 1).astype(np.float32)
    return ctx.const_tensor(weights.transpose(perm), hint), ctx.const_tensor(bias, "bias")


@visitor("Conv", check=_check_conv, int8=True)
def lower_conv(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    w = const_input(node, 1)
    out_channels = w.shape[0]
    _, channels, in_h, in_w = ctx.shape(x)
    out_hw = ctx.shape(node.outputs[0])[2:]
    win = padding.window(node, (in_h, in_w), w.shape[2:], out_hw)
    pad_mode, explicit = padding.choose(win, (in_h, in_w))
    if ctx.sparse and max(win.strides) > 1 and not padding.is_unpadded(win, (in_h, in_w)):
        # XNNPACK's NCHW (sparse) kernels take a strided conv only with explicit padding of
        # k//2 on every side. SAME is refused, and the trimmed PAD above drops the end rows no
        # window reads (0 instead of 1 on even inputs); pad as ONNX says, XNNPACK folds it in.
        pad_mode, explicit = schema.Padding.VALID, padding.onnx_pads(win)

    src = ctx.tensor(x, NHWC)
    if explicit:
        src = padding.pad_nhwc(ctx, src, explicit)
    group = attr(node, "group", 1)
    activation, result = take_fused_activation(ctx, node.outputs[0])
    out = ctx.define(result, NHWC)
    common = dict(
        padding=pad_mode, strideH=win.strides[0], strideW=win.strides[1],
        dilationHFactor=win.dilations[0], dilationWFactor=win.dilations[1],
        fusedActivationFunction=activation,
    )
    if group == channels and group > 1:
        # Depthwise: output channel o reads input channel o // multiplier, as in ONNX.
        filt, bias = _filter_and_bias(ctx, node, _1HWO_FROM_O1HW, out_channels, "depthwise_filter")
        options = schema.DepthwiseConv2DOptionsT(depthMultiplier=out_channels // channels, **common)
        ctx.emit("DEPTHWISE_CONV_2D", [src, filt, bias], [out], options)
    else:
        # group > 1 is a grouped CONV_2D: the filter's input depth is C / group.
        filt, bias = _filter_and_bias(ctx, node, _OHWI_FROM_OIHW, out_channels, "filter")
        ctx.emit("CONV_2D", [src, filt, bias], [out], schema.Conv2DOptionsT(**common))


def _transpose_conv_begin_pads(node: ir.Node, in_hw, kernel, out_hw) -> list[int]:
    """ONNX ConvTranspose's leading crop per spatial axis (pads, or derived from auto_pad)."""
    strides = attr(node, "strides", (1, 1))
    auto_pad = attr(node, "auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") or "output_shape" in node.attributes:
        output_padding = attr(node, "output_padding", (0, 0))
        begins = []
        for i in range(2):
            total = strides[i] * (in_hw[i] - 1) + output_padding[i] + kernel[i] - out_hw[i]
            begins.append(total // 2 if auto_pad == "SAME_UPPER" else total - total // 2)
        return begins
    if auto_pad == "VALID":
        return [0, 0]
    return list(attr(node, "pads", (0, 0, 0, 0))[:2])


def _check_conv_transpose(node: ir.Node) -> str | None:
    """1-D (float, via a unit axis) or 2-D, constant weight and bias; float: any group, dilation and output_shape (split per group, zero-dilated kernel, bias past the kernel's reach), int8: group = 1, no dilation, output within the kernel's reach."""
    problem = first_problem(
        require_rank(node, 4),
        require_const(node, 1, "the weight"),
        require_const(node, 2, "the bias"),
    )
    if problem:
        return problem
    if attr(node, "group", 1) != 1:
        return f"group={attr(node, 'group')}; TRANSPOSE_CONV has no groups"
    if any(d != 1 for d in attr(node, "dilations", (1, 1))):
        return f"dilations={list(attr(node, 'dilations'))}; TRANSPOSE_CONV has no dilation"
    w = const_input(node, 1)
    in_hw = static_shape(node.inputs[0])[2:]
    out_hw = static_shape(node.outputs[0])[2:]
    strides = attr(node, "strides", (1, 1))
    begins = _transpose_conv_begin_pads(node, in_hw, w.shape[2:], out_hw)
    for i in range(2):
        full = (in_hw[i] - 1) * strides[i] + w.shape[2 + i]
        if begins[i] < 0 or begins[i] + out_hw[i] > full:
            return (f"output_padding/pads give an output of {out_hw[i]} past the {full} the kernel covers; "
                    "not expressible as TRANSPOSE_CONV plus a crop")
    return None


@visitor("ConvTranspose", check=_check_conv_transpose, int8=True)
def lower_conv_transpose(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    w = const_input(node, 1)  # (C_in, C_out, kh, kw)
    out_channels = w.shape[1]
    kernel = w.shape[2:]
    n, _, in_h, in_w = ctx.shape(x)
    out_h, out_w = ctx.shape(node.outputs[0])[2:]
    strides = attr(node, "strides", (1, 1))
    begins = _transpose_conv_begin_pads(node, (in_h, in_w), kernel, (out_h, out_w))

    same = all(
        -(-o // s) == i and b == ((i - 1) * s + k - o) // 2
        for i, o, s, k, b in zip((in_h, in_w), (out_h, out_w), strides, kernel, begins)
    )
    full = [(i - 1) * s + k for i, s, k in zip((in_h, in_w), strides, kernel)]
    conv_hw = (out_h, out_w) if same else full
    # LiteRT's TRANSPOSE_CONV has no int4 filters: int4 weights are widened to int8.
    filt, bias = _filter_and_bias(ctx, node, _OHWI_FROM_IOHW, out_channels, "filter", int4=False)
    # A fused activation would run before the crop; that is fine, the crop only drops values.
    activation, result = take_fused_activation(ctx, node.outputs[0])
    options = schema.TransposeConvOptionsT(
        padding=schema.Padding.SAME if same else schema.Padding.VALID,
        strideH=strides[0], strideW=strides[1], fusedActivationFunction=activation,
    )
    out = ctx.define(result, NHWC)
    conv_out = out if tuple(conv_hw) == (out_h, out_w) else ctx.temp_like(out, [n, *conv_hw, out_channels], "full")
    inputs = [ctx.int32([n, *conv_hw, out_channels], "output_shape"), filt, ctx.tensor(x, NHWC), bias]
    # Version 3 of TRANSPOSE_CONV is the one that reads the optional bias input.
    ctx.emit("TRANSPOSE_CONV", inputs, [conv_out], options, version=3)
    if conv_out != out:
        begin = ctx.int32([0, begins[0], begins[1], 0], "begin")
        size = ctx.int32([n, out_h, out_w, out_channels], "size")
        ctx.emit("SLICE", [conv_out, begin, size], [out])

