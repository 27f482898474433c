"""ONNX explicit/auto padding versus TFLite's SAME and VALID.

TFLite's SAME puts floor(total/2) before and the rest after, with ceil(in/stride) outputs;
ONNX pads are explicit. A window op lowers with SAME when both choose the same windows,
with VALID when there is no padding, and otherwise with an explicit PAD (`pad_nhwc`) and VALID.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.lower.tflite import quantized
from edgec.lower.tflite.common import attr
from edgec.lower.tflite.context import LoweringContext


@dataclasses.dataclass(frozen=True)
class Window:
    """A sliding window over the spatial axes (H, W) of an NCHW tensor."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    begin: tuple[int, int]  # ONNX pads before H and W
    end: tuple[int, int]  # ONNX pads after H and W (ceil_mode's extra rows included)

    @property
    def effective_kernel(self) -> tuple[int, int]:
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations))


def window(node: ir.Node, in_hw: Sequence[int], kernel: Sequence[int],
           out_hw: Sequence[int] | None = None) -> Window:
    """The node's window, with auto_pad resolved to explicit pads.

    With `out_hw` (the graph's output size) the end pads grow to cover every output window,
    which is how ceil_mode's partial windows are expressed.
    """
    strides = tuple(attr(node, "strides", (1, 1)))
    dilations = tuple(attr(node, "dilations", (1, 1)))
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    auto_pad = attr(node, "auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(2):
            total = max((math.ceil(in_hw[i] / strides[i]) - 1) * strides[i] + eff[i] - in_hw[i], 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
    elif auto_pad == "VALID":
        begin, end = [0, 0], [0, 0]
    else:
        pads = tuple(attr(node, "pads", (0, 0, 0, 0)))
        begin, end = list(pads[:2]), list(pads[2:])
    if out_hw is not None:
        for i in range(2):
            needed = (out_hw[i] - 1) * strides[i] + eff[i] - (in_hw[i] + begin[i])
            end[i] = max(end[i], needed)
    return Window(tuple(kernel), strides, dilations, tuple(begin), tuple(end))


def tflite_same(in_size: int, eff_kernel: int, stride: int) -> tuple[int, int]:
    """TFLite SAME padding (before, output size) along one axis."""
    out = math.ceil(in_size / stride)
    total = max((out - 1) * stride + eff_kernel - in_size, 0)
    return total // 2, out


def onnx_output_size(in_size: int, eff_kernel: int, stride: int, begin: int, end: int) -> int:
    return (in_size + begin + end - eff_kernel) // stride + 1


def used_end_pad(in_size: int, eff_kernel: int, stride: int, begin: int, end: int) -> int:
    """How much of the end padding the windows actually reach (extra rows are never read)."""
    out = onnx_output_size(in_size, eff_kernel, stride, begin, end)
    return max((out - 1) * stride + eff_kernel - in_size - begin, 0)


def matches_same(win: Window, in_hw: Sequence[int]) -> bool:
    """True when TFLite SAME picks exactly the windows the explicit ONNX pads pick."""
    eff = win.effective_kernel
    for i in range(2):
        before, out = tflite_same(in_hw[i], eff[i], win.strides[i])
        if before != win.begin[i]:
            return False
        if onnx_output_size(in_hw[i], eff[i], win.strides[i], win.begin[i], win.end[i]) != out:
            return False
    return True


def is_unpadded(win: Window, in_hw: Sequence[int]) -> bool:
    eff = win.effective_kernel
    return all(
        win.begin[i] == 0 and used_end_pad(in_hw[i], eff[i], win.strides[i], 0, win.end[i]) == 0
        for i in range(2)
    )


def explicit_pads(win: Window, in_hw: Sequence[int]) -> list[tuple[int, int]]:
    """The (before, after) rows/cols a PAD must add so that VALID sees ONNX's windows."""
    eff = win.effective_kernel
    return [
        (win.begin[i], used_end_pad(in_hw[i], eff[i], win.strides[i], win.begin[i], win.end[i]))
        for i in range(2)
    ]


def onnx_pads(win: Window) -> list[tuple[int, int]]:
    """ONNX's own (before, after) pads, rows no window reads included: a VALID op on the
    padded input computes the same outputs (the extra rows and columns are never read)."""
    return [(win.begin[i], win.end[i]) for i in range(2)]


def choose(win: Window, in_hw: Sequence[int]) -> tuple[int, list[tuple[int, int]] | None]:
    """(TFLite Padding, explicit NHWC spatial pads to apply first or None)."""
    if is_unpadded(win, in_hw):
        return schema.Padding.VALID, None
    if matches_same(win, in_hw):
        return schema.Padding.SAME, None
    return schema.Padding.VALID, explicit_pads(win, in_hw)


def pad_nhwc(ctx: LoweringContext, src: int, spatial: list[tuple[int, int]], value: float = 0.0) -> int:
    """PAD or PADV2 of the H and W axes of an NHWC tensor (float or int8)."""
    n, h, w, c = ctx.graph.shape(src)
    (top, bottom), (left, right) = spatial
    out = ctx.temp_like(src, [n, h + top + bottom, w + left + right, c], hint="pad")
    pads = ctx.int32([[0, 0], [top, bottom], [left, right], [0, 0]], "paddings")
    pad_with(ctx, src, pads, out, value)
    return out


def pad_with(ctx: LoweringContext, src: int, paddings: int, out: int, value: float) -> None:
    """PAD when `value` is zero (int8 PAD fills with the zero point, i.e. real zero), else
    PADV2 with `value` on the tensor's own grid."""
    params = ctx.tensor_params(src)
    is_zero = value == 0.0 if params is None else int(quantized.quantize_value(value, params)) == params.zero_point
    if is_zero:
        ctx.emit("PAD", [src, paddings], [out])
    else:
        ctx.emit("PADV2", [src, paddings, ctx.scalar_like(value, src, "pad_value")], [out])
