"""The arithmetic behind merging two convolutions that have nothing nonlinear between them.

A convolution is linear in its input, so two in a row compute one convolution. Two orders
give a merged conv of the SAME geometry as one of the two, which is all edgec needs:

- conv A (any kernel, stride, padding, groups) then a 1x1 conv B (stride 1, no padding,
  groups 1): B mixes channels pixel by pixel, so it folds into A's filters,
      W[o, c, ...] = sum_m B[o, m] A_dense[m, c, ...],   b = B b_A + b_B.
- a 1x1 conv A (stride 1, no padding, groups 1) then conv B (any kernel, groups 1):
      W[o, c, ...] = sum_m B[o, m, ...] A[m, c],         b = b_B + sum_{m,...} B[o, m, ...] b_A.
  Exact only where B never reads padding: B's zero padding stands where A's output would
  have been b_A, so with a non-zero b_A the border pixels differ.

Everything runs in float64 and is rounded to the weights' dtype once. Costs are counted in
multiply-accumulates (MACs) so that a merge which makes the model slower (a depthwise kxk
then a 1x1 becomes a dense kxk) can be refused.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """What a Conv node does to space: kernel, strides, padding, dilation, groups."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    group: int
    auto_pad: str = "NOTSET"

    @property
    def pads_anything(self) -> bool:
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            return any(k > 1 for k in self.kernel) or any(s > 1 for s in self.strides)
        return any(self.pads)

    @property
    def is_pointwise(self) -> bool:
        """A 1x1 conv with stride 1, no padding and groups 1: a matrix over channels."""
        return (all(k == 1 for k in self.kernel) and all(s == 1 for s in self.strides)
                and not self.pads_anything and self.group == 1)


def dense_weight(weight: np.ndarray, group: int) -> np.ndarray:
    """A grouped conv weight [C_out, C_in/group, *k] as the equivalent dense weight [C_out, C_in, *k]."""
    if group == 1:
        return weight
    c_out, per_group, *kernel = weight.shape
    out_per_group = c_out // group
    dense = np.zeros((c_out, per_group * group, *kernel), dtype=weight.dtype)
    for g in range(group):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        dense[rows, g * per_group:(g + 1) * per_group] = weight[rows]
    return dense


def merge_then_pointwise(w1: np.ndarray, b1: np.ndarray | None, group1: int,
                         w2: np.ndarray, b2: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of conv1 followed by the 1x1 conv2; conv1's geometry, groups 1."""
    first = dense_weight(w1.astype(np.float64), group1)
    matrix = w2.astype(np.float64).reshape(w2.shape[0], w2.shape[1])  # [C_out, C_mid]
    weight = np.tensordot(matrix, first, axes=([1], [0]))  # [C_out, C_in, *k]
    bias = _or_zeros(b2, w2.shape[0]) + (matrix @ b1.astype(np.float64) if b1 is not None else 0.0)
    return weight.astype(w1.dtype), bias.astype(w1.dtype)


def merge_pointwise_then(w1: np.ndarray, b1: np.ndarray | None,
                         w2: np.ndarray, b2: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of the 1x1 conv1 followed by conv2 (groups 1); conv2's geometry."""
    matrix = w1.astype(np.float64).reshape(w1.shape[0], w1.shape[1])  # [C_mid, C_in]
    second = w2.astype(np.float64)  # [C_out, C_mid, *k]
    weight = np.moveaxis(np.tensordot(second, matrix, axes=([1], [0])), -1, 1)  # [C_out, C_in, *k]
    bias = _or_zeros(b2, w2.shape[0])
    if b1 is not None:
        bias = bias + np.tensordot(second, b1.astype(np.float64), axes=([1], [0])).reshape(len(bias), -1).sum(axis=1)
    return weight.astype(w2.dtype), bias.astype(w2.dtype)


def conv_macs(weight_shape: tuple[int, ...], output_pixels: int) -> int:
    """Multiply-accumulates of one conv: C_out x (C_in / group) x kernel area per output pixel."""
    return int(math.prod(weight_shape)) * output_pixels


def _or_zeros(bias: np.ndarray | None, channels: int) -> np.ndarray:
    return np.zeros(channels) if bias is None else bias.astype(np.float64)
