"""Layout algebra of the TFLite lowering, checked against numpy on real arrays."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgec.lower.tflite import layout


def _array(shape) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)


@pytest.mark.parametrize("src", list(itertools.permutations(range(4)))[::5])
@pytest.mark.parametrize("dst", [(0, 1, 2, 3), (0, 2, 3, 1), (3, 1, 0, 2)])
def test_relayout_turns_one_held_layout_into_another(src, dst):
    x = _array((2, 3, 4, 5))
    held = x.transpose(src)
    assert np.array_equal(held.transpose(layout.relayout(src, dst)), x.transpose(dst))


@pytest.mark.parametrize("shape", [(1, 8, 1, 1), (2, 1, 3, 1), (1, 4, 5, 1), (2, 3, 4, 5), (1, 1, 1, 1)])
def test_memory_noop_is_exactly_when_the_bytes_do_not_move(shape):
    x = _array(shape)
    for perm in itertools.permutations(range(4)):
        moves = not np.array_equal(x.transpose(perm).ravel(), x.ravel())
        assert layout.is_memory_noop(shape, perm) == (not moves), perm


RESHAPES = [
    # (shape, held perm, new shape)
    ((2, 4, 3, 5), layout.NHWC, (2, 4, 15)),  # merge H, W of an NHWC tensor
    ((2, 4, 3, 5), layout.NHWC, (2, 4, 3, 5, 1)),  # add a size-1 axis
    ((1, 8, 1, 1), layout.NHWC, (1, 8)),  # flatten after global pooling
    ((2, 6, 4), (0, 2, 1), (2, 2, 3, 4)),  # split a channel axis held last
    ((4, 1, 6), (1, 0, 2), (4, 2, 3)),  # seq-first transformer layout
    ((2, 3, 4), (0, 1, 2), (6, 4)),  # identity layout: plain reshape
]


@pytest.mark.parametrize("shape,perm,new_shape", RESHAPES)
def test_reshape_layout_keeps_bytes_in_place(shape, perm, new_shape):
    x = _array(shape)
    out_perm = layout.reshape_layout(shape, perm, new_shape)
    assert out_perm is not None
    held = x.transpose(perm)
    reshaped = held.reshape(layout.permute(new_shape, out_perm))
    assert np.array_equal(reshaped, x.reshape(new_shape).transpose(out_perm))


@pytest.mark.parametrize("shape,perm,new_shape", [
    ((2, 4, 3, 5), layout.NHWC, (2, 12, 5)),  # merges C with H, which NHWC keeps apart
    ((2, 6, 4), (0, 2, 1), (2, 24)),  # merges axes held in the opposite order
])
def test_reshape_layout_refuses_when_a_run_is_split(shape, perm, new_shape):
    assert layout.reshape_layout(shape, perm, new_shape) is None


def test_drop_and_insert_axes_follow_squeeze_and_unsqueeze():
    x = _array((2, 1, 3, 1))
    perm = (0, 2, 3, 1)
    dropped = layout.drop_axes(perm, [1, 3])
    assert np.array_equal(x.transpose(perm).reshape(layout.permute((2, 3), dropped)),
                          x.reshape(2, 3).transpose(dropped))
    y = _array((2, 3, 4))
    inserted = layout.insert_axes((0, 2, 1), [0, 3])
    expanded = y.reshape(1, 2, 3, 1, 4)
    assert np.array_equal(y.transpose(0, 2, 1).reshape(layout.permute(expanded.shape, inserted)),
                          expanded.transpose(inserted))


def test_constants_are_rank_aligned_then_permuted():
    scale = np.arange(4, dtype=np.float32).reshape(4, 1, 1)
    nhwc = layout.const_in_layout(scale, 4, layout.NHWC)
    assert nhwc.shape == (1, 1, 1, 4)
    x = _array((2, 4, 3, 5))
    assert np.array_equal(x.transpose(layout.NHWC) * nhwc, (x * scale).transpose(layout.NHWC))
    assert layout.const_in_layout(np.float32(2.0), 4, layout.NHWC).shape == ()
