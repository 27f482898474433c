"""Permutations between ONNX's layout (NCHW) and the one a TFLite tensor holds (NHWC).

Every ONNX value is held by a TFLite tensor `t` and a permutation `perm` with
`t == onnx_value.transpose(perm)`. Convolutions and pools produce `NHWC` (= (0, 2, 3, 1));
elementwise ops keep their input's permutation; ONNX Transpose only composes permutations.
A real TRANSPOSE is emitted only where an op needs another layout, and a RESHAPE instead when
the two layouts hold the same bytes (only size-1 axes move, e.g. N,C,1,1 after pooling).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Perm = tuple[int, ...]

NHWC: Perm = (0, 2, 3, 1)


def identity(rank: int) -> Perm:
    return tuple(range(rank))


def is_identity(perm: Sequence[int]) -> bool:
    return tuple(perm) == identity(len(perm))


def inverse(perm: Sequence[int]) -> Perm:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def permute(items: Sequence, perm: Sequence[int]) -> list:
    """`items` (one entry per ONNX axis) in the order a tensor with `perm` stores them."""
    return [items[p] for p in perm]


def axis_in(perm: Sequence[int], onnx_axis: int) -> int:
    """Where ONNX axis `onnx_axis` sits in a tensor held with `perm`."""
    return list(perm).index(onnx_axis)


def relayout(src: Sequence[int], dst: Sequence[int]) -> Perm:
    """The TRANSPOSE perm that turns a tensor held with `src` into one held with `dst`.

    t_src = x.transpose(src); x.transpose(dst) = t_src.transpose(q) with q = src^-1 o dst.
    """
    inv = inverse(src)
    return tuple(inv[d] for d in dst)


def is_memory_noop(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """True when transposing `shape` by `perm` keeps the bytes in order (a RESHAPE does it)."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def drop_axes(perm: Sequence[int], axes: Sequence[int]) -> Perm:
    """The permutation left when ONNX axes `axes` are removed (and the rest renumbered)."""
    removed = set(axes)
    kept = [p for p in perm if p not in removed]
    renumber = {a: i for i, a in enumerate(sorted(kept))}
    return tuple(renumber[p] for p in kept)


def insert_axes(perm: Sequence[int], new_axes: Sequence[int]) -> Perm:
    """The permutation after inserting size-1 ONNX axes at output positions `new_axes`.

    Size-1 axes can sit anywhere without moving bytes; each is placed at its own index.
    """
    out_rank = len(perm) + len(new_axes)
    new = sorted(a % out_rank for a in new_axes)
    old_to_new = [i for i in range(out_rank) if i not in new]
    result = [old_to_new[p] for p in perm]
    for a in new:
        result.insert(min(a, len(result)), a)
    return tuple(result)


def reshape_layout(in_shape: Sequence[int], perm: Sequence[int], out_shape: Sequence[int]) -> Perm | None:
    """The layout in which a reshape of a tensor held with `perm` moves no bytes, if any.

    A reshape merges or splits runs of axes. Where each run sits contiguously and in order
    in the held tensor, the reshape is a RESHAPE of the held tensor, and the output is held
    with the runs in that same order: e.g. (N, C, H, W) held NHWC reshaped to (N, C, H*W) is
    held as (N, H*W, C). Size-1 axes go anywhere. Returns None when some run is split up.
    """
    in_axes = [a for a, d in enumerate(in_shape) if d != 1]
    out_axes = [a for a, d in enumerate(out_shape) if d != 1]
    groups: dict[int, tuple[list[int], list[int]]] = {}  # first input axis -> (input run, output run)
    i = j = 0
    while i < len(in_axes) and j < len(out_axes):
        run_in, run_out = [in_axes[i]], [out_axes[j]]
        size_in, size_out = in_shape[in_axes[i]], out_shape[out_axes[j]]
        i, j = i + 1, j + 1
        while size_in != size_out:
            if size_in < size_out and i < len(in_axes):
                run_in.append(in_axes[i])
                size_in *= in_shape[in_axes[i]]
                i += 1
            elif size_out < size_in and j < len(out_axes):
                run_out.append(out_axes[j])
                size_out *= out_shape[out_axes[j]]
                j += 1
            else:
                return None
        groups[run_in[0]] = (run_in, run_out)
    if i != len(in_axes) or j != len(out_axes):
        return None
    held = [p for p in perm if in_shape[p] != 1]
    order: list[int] = []
    k = 0
    while k < len(held):
        run = groups.get(held[k])
        if run is None or held[k : k + len(run[0])] != run[0]:
            return None
        order.extend(run[1])
        k += len(run[0])
    for a in (a for a, d in enumerate(out_shape) if d == 1):
        order.insert(min(a, len(order)), a)
    return tuple(order)


def align_rank(array: np.ndarray, rank: int) -> np.ndarray:
    """Numpy-broadcast alignment: prepend size-1 axes up to `rank`."""
    return array.reshape((1,) * (rank - array.ndim) + array.shape)


def const_in_layout(array: np.ndarray, rank: int, perm: Sequence[int]) -> np.ndarray:
    """A broadcastable constant operand aligned to `rank` and stored with `perm`.

    A scalar stays a scalar: TFLite broadcasts it everywhere and it needs no transpose.
    """
    if array.ndim == 0:
        return array
    return np.ascontiguousarray(align_rank(array, rank).transpose(perm))
