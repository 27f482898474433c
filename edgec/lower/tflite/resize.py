"""Resize over H and W -> RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR, or two constant matmuls.

TFLite has two flags (align_corners, half_pixel_centers) where ONNX has a coordinate
transformation mode and, for nearest, a rounding mode. Rather than trusting a mapping
table, the check builds both sides' 1-D interpolation matrices (output row = weights times
input rows) for the actual sizes and picks the TFLite flags that reproduce ONNX exactly.

Every other static-shape Resize (cubic, antialiased, tf_crop_and_resize, a coordinate or
rounding mode no flag setting matches, fractional scales) is linear in its input and
separable: Y = M_h X M_w^T, with M_h, M_w the constant 1-D matrices (edgec/lower/
resize_matrices.py, from onnx's reference implementation). It lowers as two
FULLY_CONNECTED ops (keep_num_dims) with those matrices as weights, plus a constant ADD for
tf_crop_and_resize's extrapolation value.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import static_shape
from edgec.lower.resize_matrices import resize_matrices
from edgec.lower.tflite import quantized
from edgec.lower.tflite.common import first_problem, require_const
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.layout import NHWC
from edgec.lower.tflite.registry import visitor

_FLAG_CHOICES = ((False, False), (True, False), (False, True))  # (align_corners, half_pixel_centers)


@dataclasses.dataclass(frozen=True)
class ResizePlan:
    # RESIZE_BILINEAR, RESIZE_NEAREST_NEIGHBOR, "REPEAT" (integer nearest upsampling) or
    # "MATMUL" (constant interpolation matrices)
    op: str
    align_corners: bool = False
    half_pixel_centers: bool = False
    factors: tuple[int, int] = (1, 1)
    matrices: tuple[np.ndarray, np.ndarray] | None = None  # (out, in) for H and W
    extrapolated: np.ndarray | None = None  # (out_h, out_w) constant added (tf_crop_and_resize)


def _matrix(lower: np.ndarray, upper: np.ndarray, w_upper: np.ndarray, in_size: int) -> np.ndarray:
    m = np.zeros((len(lower), in_size))
    rows = np.arange(len(lower))
    np.add.at(m, (rows, lower), 1 - w_upper)
    np.add.at(m, (rows, upper), w_upper)
    return m


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


def plan(node: ir.Node) -> ResizePlan | str:
    """The TFLite ops that reproduce this Resize, or the reason there are none."""
    problem = first_problem(*(require_const(node, i, what) for i, what in ((1, "roi"), (2, "scales"), (3, "sizes"))))
    if problem:
        return problem
    found = resize_matrices(node)
    if isinstance(found, str):
        return found
    interp, (m_h, m_w), extrapolated = found.interpolation, found.matrices, found.extrapolated
    in_shape, out_shape = static_shape(node.inputs[0]), static_shape(node.outputs[0])
    if extrapolated is None and interp.mode in ("nearest", "linear") and not interp.antialias:
        if interp.mode == "nearest" and _is_repeat(m_h) and _is_repeat(m_w):
            return ResizePlan("REPEAT", factors=tuple(out_shape[a] // in_shape[a] for a in (2, 3)))
        op = "RESIZE_NEAREST_NEIGHBOR" if interp.mode == "nearest" else "RESIZE_BILINEAR"
        for align, half in _FLAG_CHOICES:
            tfl = [tflite_interpolation(interp.mode, align, half, in_shape[a], out_shape[a]) for a in (2, 3)]
            if all(np.allclose(t, o, atol=1e-5) for t, o in zip(tfl, (m_h, m_w))):
                return ResizePlan(op, align, half)
    return ResizePlan("MATMUL", matrices=(m_h, m_w), extrapolated=extrapolated)


def _check_resize(node: ir.Node) -> str | None:
    """2-D; mode and coordinate transform match a TFLite RESIZE_BILINEAR/NEAREST_NEIGHBOR setting (asymmetric, align_corners, half_pixel) or an integer nearest upscale."""
    result = plan(node)
    return result if isinstance(result, str) else None


def _int8_resize(node: ir.Node) -> str | None:
    result = plan(node)
    if isinstance(result, ResizePlan) and result.op == "MATMUL":
        return "this Resize lowers as float interpolation matmuls (no TFLite resize kernel matches it)"
    return None


@visitor("Resize", check=_check_resize, int8=_int8_resize)
def lower_resize(node: ir.Node, ctx: LoweringContext) -> None:
    p = plan(node)
    if p.op == "MATMUL":
        _interpolation_matmuls(ctx, node, p)
        return
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


# (N, C, H, W) <-> (N, C, W, H): puts the axis the next matmul contracts last.
_SWAP_HW = (0, 1, 3, 2)


def _interpolation_matmuls(ctx: LoweringContext, node: ir.Node, p: ResizePlan) -> None:
    """Y = M_h X M_w^T: X held as (N, C, W, H) -> FC(M_h) -> (N, C, W, oh) -> TRANSPOSE ->
    (N, C, oh, W) -> FC(M_w) -> (N, C, oh, ow) [+ extrapolation constant]."""
    m_h, m_w = p.matrices
    n, c, h, w = ctx.shape(node.inputs[0])
    oh, ow = m_h.shape[0], m_w.shape[0]
    options = schema.FullyConnectedOptionsT(keepNumDims=True)

    def fc(src: int, matrix: np.ndarray, dst: int) -> None:
        bias = ctx.float32(np.zeros(matrix.shape[0]), "bias")
        ctx.emit("FULLY_CONNECTED", [src, ctx.float32(matrix, "interpolation"), bias], [dst], options)

    src = ctx.tensor(node.inputs[0], _SWAP_HW)
    along_h = ctx.temp([n, c, w, oh], hint="resized_h")
    fc(src, m_h, along_h)
    swapped = ctx.temp([n, c, oh, w], hint="resized_h_t")
    ctx.emit("TRANSPOSE", [along_h, ctx.int32(_SWAP_HW, "perm")], [swapped], schema.TransposeOptionsT())
    if p.extrapolated is None:
        fc(swapped, m_w, ctx.define(node.outputs[0]))
        return
    along_w = ctx.temp([n, c, oh, ow], hint="resized")
    fc(swapped, m_w, along_w)
    ctx.emit("ADD", [along_w, ctx.float32(p.extrapolated[None, None], "extrapolated")],
             [ctx.define(node.outputs[0])], schema.AddOptionsT())


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
