"""Resize (nearest, linear) over H and W -> RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR.

TFLite has two flags (align_corners, half_pixel_centers) where ONNX has a coordinate
transformation mode and, for nearest, a rounding mode. Rather than trusting a mapping
table, the check builds both sides' 1-D interpolation (which input rows, which weights)
for the actual sizes and picks the TFLite flags that reproduce ONNX exactly; a combination
with no exact equivalent is reported as unsupported.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import static_shape
from edgec.lower.tflite import quantized
from edgec.lower.tflite.common import attr, const_input, first_problem, require_const
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.layout import NHWC
from edgec.lower.tflite.registry import visitor

_FLAG_CHOICES = ((False, False), (True, False), (False, True))  # (align_corners, half_pixel_centers)
_SUPPORTED_COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric")


@dataclasses.dataclass(frozen=True)
class ResizePlan:
    op: str  # RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR, or "REPEAT" (integer nearest upsampling)
    align_corners: bool = False
    half_pixel_centers: bool = False
    factors: tuple[int, int] = (1, 1)


def _str_attr(node: ir.Node, name: str, default: str) -> str:
    value = attr(node, name, default)
    return value.decode() if isinstance(value, bytes) else value


def _onnx_coords(mode: str, in_size: int, out_size: int, scale: float) -> np.ndarray:
    o = np.arange(out_size, dtype=np.float64)
    if mode == "half_pixel":
        return (o + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = out_size / (scale * in_size)
        offset = in_size / 2 * (1 - adjustment)
        return offset + (o + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if out_size > 1 else np.zeros(out_size)
    if mode == "align_corners":
        return o * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros(out_size)
    return o / scale  # asymmetric


def _round(x: np.ndarray, nearest_mode: str) -> np.ndarray:
    if nearest_mode == "floor":
        return np.floor(x)
    if nearest_mode == "ceil":
        return np.ceil(x)
    if nearest_mode == "round_prefer_ceil":
        return np.floor(x + 0.5)
    return np.ceil(x - 0.5)  # round_prefer_floor


def _matrix(lower: np.ndarray, upper: np.ndarray, w_upper: np.ndarray, in_size: int) -> np.ndarray:
    m = np.zeros((len(lower), in_size))
    rows = np.arange(len(lower))
    np.add.at(m, (rows, lower), 1 - w_upper)
    np.add.at(m, (rows, upper), w_upper)
    return m


def onnx_interpolation(mode: str, coord: str, nearest_mode: str, in_size: int, out_size: int,
                       scale: float) -> np.ndarray:
    """(out, in) matrix: output row i = sum_j m[i, j] * input row j, as onnxruntime computes it."""
    x = _onnx_coords(coord, in_size, out_size, scale)
    if mode == "nearest":
        idx = np.clip(_round(x, nearest_mode), 0, in_size - 1).astype(int)
        return _matrix(idx, idx, np.zeros(out_size), in_size)
    x = np.clip(x, 0, in_size - 1)
    lo = np.minimum(np.floor(x).astype(int), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    return _matrix(lo, hi, x - lo, in_size)


def tflite_interpolation(mode: str, align_corners: bool, half_pixel: bool, in_size: int,
                         out_size: int) -> np.ndarray:
    """(out, in) matrix of TFLite's resize kernels for these flags (float32 like the kernels)."""
    f32 = np.float32
    scale = f32((in_size - 1) / (out_size - 1)) if align_corners and out_size > 1 else f32(in_size / out_size)
    o = np.arange(out_size, dtype=f32)
    if mode == "nearest":
        x = (o + f32(0.5 if half_pixel else 0.0)) * scale
        # TfLiteRound rounds halves away from zero.
        idx = np.floor(x + f32(0.5)) if align_corners else np.floor(x)
        idx = np.minimum(idx, in_size - 1)
        if half_pixel:
            idx = np.maximum(idx, 0)
        idx = idx.astype(int)
        return _matrix(idx, idx, np.zeros(out_size), in_size)
    x = ((o + f32(0.5)) * scale - f32(0.5)) if half_pixel else o * scale
    lo = np.maximum(np.floor(x), 0).astype(int)
    hi = np.minimum(np.ceil(x), in_size - 1).astype(int)
    return _matrix(lo, hi, (x - lo).astype(np.float64), in_size)


def _is_repeat(m: np.ndarray) -> bool:
    """True when output row i copies input row i // f for an integer f (plain upsampling)."""
    out_size, in_size = m.shape
    if out_size % in_size:
        return False
    return np.array_equal(m, np.repeat(np.eye(in_size), out_size // in_size, axis=0))


def _axis_scales(node: ir.Node, rank: int) -> list[float] | None:
    scales = const_input(node, 2)
    if scales is None or scales.size == 0:
        return None
    axes = attr(node, "axes", None)
    full = [1.0] * rank
    for a, s in zip(axes if axes is not None else range(rank), scales.reshape(-1)):
        full[a % rank] = float(s)
    return full


def plan(node: ir.Node) -> ResizePlan | str:
    """The TFLite op and flags that reproduce this Resize, or the reason there are none."""
    problem = first_problem(*(require_const(node, i, what) for i, what in ((1, "roi"), (2, "scales"), (3, "sizes"))))
    if problem:
        return problem
    mode = _str_attr(node, "mode", "nearest")
    coord = _str_attr(node, "coordinate_transformation_mode", "half_pixel")
    nearest_mode = _str_attr(node, "nearest_mode", "round_prefer_floor")
    if mode not in ("nearest", "linear"):
        return f"mode='{mode}'; TFLite resizes with nearest or bilinear only"
    if coord not in _SUPPORTED_COORDS:
        return f"coordinate_transformation_mode='{coord}' has no TFLite equivalent"
    if attr(node, "antialias", 0):
        return "antialias=1; TFLite's resize kernels do not antialias"
    in_shape, out_shape = static_shape(node.inputs[0]), static_shape(node.outputs[0])
    if len(in_shape) != 4 or in_shape[:2] != out_shape[:2]:
        return f"resizes {list(in_shape)} to {list(out_shape)}; only H and W of a 4-D tensor can be resized"
    scales = _axis_scales(node, 4) or [o / i for o, i in zip(out_shape, in_shape)]
    onnx = [onnx_interpolation(mode, coord, nearest_mode, in_shape[a], out_shape[a], scales[a]) for a in (2, 3)]
    if mode == "nearest" and all(_is_repeat(m) for m in onnx):
        return ResizePlan("REPEAT", factors=tuple(out_shape[a] // in_shape[a] for a in (2, 3)))
    op = "RESIZE_NEAREST_NEIGHBOR" if mode == "nearest" else "RESIZE_BILINEAR"
    for align, half in _FLAG_CHOICES:
        tfl = [tflite_interpolation(mode, align, half, in_shape[a], out_shape[a]) for a in (2, 3)]
        if all(np.allclose(t, o, atol=1e-5) for t, o in zip(tfl, onnx)):
            return ResizePlan(op, align, half)
    extra = f", nearest_mode='{nearest_mode}'" if mode == "nearest" else ""
    return (f"mode='{mode}', coordinate_transformation_mode='{coord}'{extra} from "
            f"{list(in_shape[2:])} to {list(out_shape[2:])} matches no TFLite align_corners/half_pixel_centers "
            "setting; use asymmetric, align_corners or half_pixel coordinates")


def _check_resize(node: ir.Node) -> str | None:
    result = plan(node)
    return result if isinstance(result, str) else None


@visitor("Resize", check=_check_resize, int8=True)
def lower_resize(node: ir.Node, ctx: LoweringContext) -> None:
    p = plan(node)
    out = ctx.define(node.outputs[0], NHWC)
    src = ctx.tensor(node.inputs[0], NHWC)
    if p.op == "REPEAT":
        _repeat(ctx, src, out, p.factors)
        return
    out_h, out_w = ctx.shape(node.outputs[0])[2:]
    options_cls = schema.ResizeBilinearOptionsT if p.op == "RESIZE_BILINEAR" else schema.ResizeNearestNeighborOptionsT
    options = options_cls(alignCorners=p.align_corners, halfPixelCenters=p.half_pixel_centers)
    # Version 3 is the first with half_pixel_centers.
    ctx.emit(p.op, [src, ctx.int32([out_h, out_w], "size")], [out], options,
             version=3 if p.half_pixel_centers else 1)


def _ones(ctx: LoweringContext, like: int, shape: tuple[int, ...]) -> int:
    """Ones to multiply `like` by; in int8 the integer 1 at scale 1, so MUL's rescale factor
    (input scale x 1 / output scale) is exactly 1 and every value is copied unchanged."""
    if ctx.tensor_params(like) is None:
        return ctx.float32(np.ones(shape), "ones")
    return ctx.const_tensor(np.ones(shape, np.int8), "ones", quantization=quantized.per_axis(np.float32(1), np.int64(0), 0))


def _repeat(ctx: LoweringContext, src: int, out: int, factors: tuple[int, int]) -> None:
    """Nearest upsampling by integer factors as a broadcast: XNNPACK runs it, while it leaves
    RESIZE_NEAREST_NEIGHBOR to the CPU kernels.

    (N, H, W, C) -> (N, H, 1, W, 1, C) * ones(1, 1, fh, 1, fw, 1) -> (N, H*fh, W*fw, C).
    """
    n, h, w, c = ctx.graph.shape(src)
    fh, fw = factors
    spread = ctx.temp_like(src, [n, h, 1, w, 1, c], hint="spread")
    ctx.emit("RESHAPE", [src, ctx.int32([n, h, 1, w, 1, c])], [spread])
    tiled = ctx.temp_like(src, [n, h, fh, w, fw, c], hint="tiled")
    ones = _ones(ctx, src, (1, 1, fh, 1, fw, 1))
    ctx.emit("MUL", [spread, ones], [tiled], schema.MulOptionsT())
    ctx.emit("RESHAPE", [tiled, ctx.int32([n, h * fh, w * fw, c])], [out])
