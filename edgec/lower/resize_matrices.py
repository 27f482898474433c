"""ONNX Resize over H and W as constant interpolation matrices: Y = M_h X M_w^T (+ E).

Resize is linear in its input and separable over axes, so a static-shape Resize of a 4-D
tensor is fixed by two 1-D matrices (output row i = sum_j M[i, j] * input row j) and, for
tf_crop_and_resize, a constant E holding `extrapolation_value` where a coordinate falls
outside the crop. The matrices come from onnx's reference implementation applied to an
identity, so every mode (nearest with each rounding, linear, cubic, antialias,
exclude_outside, every coordinate transformation, keep_aspect_ratio_policy) has ONNX's
semantics by construction. The TFLite lowering uses them to pick resize flags or lowers
them as matmuls; the TVM lowering swaps them in where TVM's resize2d differs from ONNX.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array, static_shape

_MODES = ("nearest", "linear", "cubic")
_COORDS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
           "tf_crop_and_resize")


@dataclasses.dataclass(frozen=True)
class Interpolation:
    """A Resize node's interpolation attributes (hashable, to cache its matrices)."""

    mode: str
    coord: str
    nearest_mode: str
    cubic_a: float
    exclude_outside: bool
    antialias: bool
    extrapolation: float


@dataclasses.dataclass(frozen=True)
class ResizeMatrices:
    interpolation: Interpolation
    matrices: tuple[np.ndarray, np.ndarray]  # (out, in) for H and for W
    extrapolated: np.ndarray | None  # (out_h, out_w) constant added (tf_crop_and_resize), or None
    scales: tuple[float, float]  # the scales ONNX uses for H and W
    fractional: bool  # some axis' in * scale is not its output length


def _attr(node: ir.Node, name: str, default):
    a = node.attributes.get(name)
    if a is None:
        return default
    value = a.value
    return value.decode() if isinstance(value, bytes) else value


def interpolation(node: ir.Node) -> Interpolation:
    return Interpolation(
        _attr(node, "mode", "nearest"), _attr(node, "coordinate_transformation_mode", "half_pixel"),
        _attr(node, "nearest_mode", "round_prefer_floor"), float(_attr(node, "cubic_coeff_a", -0.75)),
        bool(_attr(node, "exclude_outside", 0)), bool(_attr(node, "antialias", 0)),
        float(_attr(node, "extrapolation_value", 0.0)))


def _input(node: ir.Node, index: int) -> np.ndarray | None:
    value = node.inputs[index] if len(node.inputs) > index else None
    return None if value is None else const_array(value)


@functools.lru_cache(maxsize=256)
def onnx_axis_matrix(interp: Interpolation, in_size: int, out_size: int, scale: float,
                     roi: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """((out, in) matrix, (out,) extrapolated mask) of ONNX Resize along one axis.

    Computed by onnx's reference Resize on the identity; rows tf_crop_and_resize
    extrapolates are zero in the matrix and set in the mask.
    """
    from onnx.reference.ops import op_resize as ref

    if interp.mode == "nearest":
        def coeffs(ratio, scale_factor):
            return ref._nearest_coeffs(ratio, mode=interp.nearest_mode)
    elif interp.mode == "cubic":
        cubic = ref._cubic_coeffs_antialias if interp.antialias else ref._cubic_coeffs

        def coeffs(ratio, scale_factor):
            return cubic(ratio, scale_factor, A=interp.cubic_a)
    else:
        coeffs = ref._linear_coeffs_antialias if interp.antialias else ref._linear_coeffs

    def along(data: np.ndarray, extrapolation: float) -> np.ndarray:
        return ref._interpolate_1d_along_axis(
            data, 1, scale, out_size, coeffs, roi=None if roi is None else list(roi),
            extrapolation_value=extrapolation, coordinate_transformation_mode=interp.coord,
            exclude_outside=interp.exclude_outside)

    matrix = along(np.eye(in_size), 0.0).T
    ones = np.ones((1, in_size))
    mask = (along(ones, 1.0) - along(ones, 0.0))[0] != 0
    return matrix, mask


def _per_axis(node: ir.Node, rank: int, values: np.ndarray | None, fill: list) -> list | None:
    """An input listing one value per resized axis (the `axes` attribute, else every axis) spread over `rank`."""
    if values is None or values.size == 0:
        return None
    axes = _attr(node, "axes", None)
    full = list(fill)
    for a, v in zip(axes if axes is not None else range(rank), values.reshape(-1).tolist()):
        full[a % rank] = v
    return full


def axis_scales(node: ir.Node, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[float]:
    """The scale ONNX's Resize uses per axis (as onnx.reference derives it: from `scales`,
    else sizes / input with keep_aspect_ratio_policy)."""
    rank = len(in_shape)
    scales = _per_axis(node, rank, _input(node, 2), [1.0] * rank)
    if scales is not None:
        return [float(s) for s in scales]
    ratios = [o / i for o, i in zip(out_shape, in_shape)]
    policy = _attr(node, "keep_aspect_ratio_policy", "stretch")
    if policy == "stretch":
        return ratios
    axes = [a % rank for a in _attr(node, "axes", None) or range(rank)]
    sizes = _per_axis(node, rank, _input(node, 3), list(in_shape))
    chosen = [sizes[a] / in_shape[a] for a in axes]
    scale = min(chosen) if policy == "not_larger" else max(chosen)
    return [scale if a in axes else 1.0 for a in range(rank)]


def _roi(node: ir.Node, rank: int) -> list[tuple[float, float]] | None:
    roi = _input(node, 1)
    if roi is None or roi.size == 0:
        return None
    axes = _attr(node, "axes", None)
    axes = [a % rank for a in axes] if axes is not None else list(range(rank))
    starts, ends = roi.reshape(-1)[:len(axes)], roi.reshape(-1)[len(axes):]
    full = [(0.0, 1.0)] * rank
    for a, lo, hi in zip(axes, starts.tolist(), ends.tolist()):
        full[a] = (float(lo), float(hi))
    return full


def resize_matrices(node: ir.Node) -> ResizeMatrices | str:
    """The node's interpolation matrices, or why it has none (its roi/scales/sizes must be constants)."""
    interp = interpolation(node)
    if interp.mode not in _MODES:
        return f"mode='{interp.mode}'; ONNX Resize modes are nearest, linear and cubic"
    if interp.coord not in _COORDS:
        return f"coordinate_transformation_mode='{interp.coord}' is not an ONNX mode"
    if interp.mode == "nearest" and interp.antialias:
        return "antialias=1 with mode='nearest' is undefined in ONNX"
    in_shape, out_shape = static_shape(node.inputs[0]), static_shape(node.outputs[0])
    if in_shape is None or out_shape is None:
        return "input or output shape is not static; pass --input-shape"
    if len(in_shape) != 4 or in_shape[:2] != out_shape[:2]:
        return (f"resizes {list(in_shape)} to {list(out_shape)}; only H and W of a 4-D tensor are lowered: "
                "reshape to NCHW first")
    if any(o == 0 for o in out_shape):
        return f"resizes to an empty tensor {list(out_shape)}"
    scales = axis_scales(node, in_shape, out_shape)
    fractional = [a for a in (2, 3) if abs(scales[a] * in_shape[a] - out_shape[a]) > 1e-6]
    if interp.coord == "align_corners" and fractional:
        a = fractional[0]
        # The ONNX reference scales by (in - 1) / (in * scale - 1), onnxruntime by (in - 1) / (out - 1).
        return (f"align_corners with scale {scales[a]:g} on an axis of {in_shape[a]} gives a fractional output "
                f"length ({scales[a] * in_shape[a]:g}), where onnxruntime and the ONNX reference disagree; "
                "give the Resize `sizes` instead of `scales`")
    roi = _roi(node, 4) if interp.coord == "tf_crop_and_resize" else None
    try:
        axes = [onnx_axis_matrix(interp, in_shape[a], out_shape[a], scales[a], None if roi is None else roi[a])
                for a in (2, 3)]
    except (ImportError, AttributeError) as exc:  # onnx.reference's internals moved
        return f"cannot build ONNX's interpolation matrices with this onnx version ({exc})"
    extrapolated = None
    if any(mask.any() for _, mask in axes):
        outside = axes[0][1][:, None] | axes[1][1][None, :]
        extrapolated = np.where(outside, interp.extrapolation, 0.0).astype(np.float32)
    return ResizeMatrices(interp, (axes[0][0], axes[1][0]), extrapolated, (scales[2], scales[3]), bool(fractional))
