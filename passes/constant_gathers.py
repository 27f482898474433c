"""Gathers with constant indices become the data movement they are: Reshape, Slice, Transpose.

torch.export writes layout artefacts as index gathers: timm's channels-last pooling head
exports `aten.as_strided` as a Gather over a flattened tensor, and transformers' mask code
picks a mask's elements with a GatherND whose indices are a constant grid. A lowering sees a
gather (TFLite's GATHER/GATHER_ND are not delegated to XNNPACK, and GATHER_ND has no
TFLite int8 kernel here) where the graph only reshapes or slices.

For a Gather, GatherElements or GatherND with constant indices over data of static shape
N = prod(shape), the pass gathers the flat positions arange(N) themselves: the result says
which input element each output element is. When those positions are an affine,
non-overlapping grid (out[i] = base + sum_j i_j * stride_j, strides dividing one another),
the gather is

    Reshape(data, mixed radix of the strides) -> Slice -> Reshape -> Transpose -> Reshape

with the no-op steps left out (usually one Reshape, or a Slice and a Reshape). With constant
data too, the node is folded into a constant (onnx's reference GatherElements fails on axes
longer than 64, so onnxscript's folder leaves such nodes behind).
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array, static_shape
from edgec.passes.base import EdgecPass, ValueNames, add_initializer, take_place_of

_GATHERS = ("Gather", "GatherElements", "GatherND")

# Position maps and folded constants are built in memory: stay well below a big weight.
_SIZE_LIMIT = 1 << 24


def gather(op: str, data: np.ndarray, indices: np.ndarray, axis: int = 0, batch_dims: int = 0) -> np.ndarray:
    """The ONNX gather `op` in numpy (negative indices wrap, as the spec says)."""
    indices = indices.astype(np.int64)
    if op == "Gather":
        axis %= data.ndim
        return np.take(data, np.where(indices < 0, indices + data.shape[axis], indices), axis=axis)
    if op == "GatherElements":
        axis %= data.ndim
        return np.take_along_axis(data, np.where(indices < 0, indices + data.shape[axis], indices), axis=axis)
    k = indices.shape[-1]
    dims = np.array(data.shape[batch_dims:batch_dims + k])
    indices = np.where(indices < 0, indices + dims, indices)
    batch = int(np.prod(data.shape[:batch_dims], dtype=np.int64))
    flat_data = data.reshape(batch, *data.shape[batch_dims:])
    flat_idx = indices.reshape(batch, -1, k)
    picked = np.stack([flat_data[b][tuple(flat_idx[b, :, j] for j in range(k))] for b in range(batch)])
    return picked.reshape(*indices.shape[:-1], *data.shape[batch_dims + k:])


def _op_args(node: ir.Node) -> dict:
    attrs = node.attributes
    if node.op_type == "GatherND":
        return {"batch_dims": attrs["batch_dims"].value if "batch_dims" in attrs else 0}
    return {"axis": attrs["axis"].value if "axis" in attrs else 0}


def data_movement(positions: np.ndarray, in_shape: tuple[int, ...]) -> list[tuple[str, object]] | None:
    """The Reshape/Slice/Transpose steps that move a tensor of `in_shape` into `positions`'
    order (an array of flat input positions in the output's shape), or None when the
    positions are not an affine, non-overlapping grid.

    Steps are ("reshape", shape), ("slice", (starts, ends)) and ("transpose", perm).
    """
    n = math.prod(in_shape)
    out_shape = positions.shape
    base = int(positions.flat[0])
    axes = [a for a, d in enumerate(out_shape) if d > 1]
    strides = {}
    for a in axes:
        at = [0] * len(out_shape)
        at[a] = 1
        strides[a] = int(positions[tuple(at)]) - base
    expected = np.full(out_shape, base, np.int64)
    for a in axes:
        shape = [1] * len(out_shape)
        shape[a] = out_shape[a]
        expected = expected + strides[a] * np.arange(out_shape[a]).reshape(shape)
    if not np.array_equal(expected, positions):
        return None
    order = sorted(axes, key=lambda a: -strides[a])  # outermost (largest stride) first
    t = [strides[a] for a in order]
    sizes = [out_shape[a] for a in order]
    if any(s <= 0 for s in t) or len(set(t)) != len(t):
        return None  # reversed or repeated elements: not a slice
    for k in range(len(t) - 1):
        if t[k] % t[k + 1] or t[k] < sizes[k + 1] * t[k + 1]:
            return None
    outer = t[0] if t else 1
    if n % outer:
        return None
    # The mixed radix in which each output axis is one digit: [n/t1, t1/t2, ..., t_K].
    radix = [n // outer] + [t[k] // t[k + 1] for k in range(len(t) - 1)] + ([t[-1]] if t else [])
    digits, rest = [], base
    for r in reversed(radix):
        digits.append(rest % r)
        rest //= r
    starts = list(reversed(digits))
    extent = sizes + [1] * (len(radix) - len(sizes))
    if rest or any(s + e > r for s, e, r in zip(starts, extent, radix)):
        return None  # the grid wraps around a digit: not one slice
    steps: list[tuple[str, object]] = [("reshape", tuple(radix))]
    if any(s or e != r for s, e, r in zip(starts, extent, radix)):
        steps.append(("slice", ([*starts], [s + e for s, e in zip(starts, extent)])))
    steps.append(("reshape", tuple(sizes)))
    # The sliced axes are in stride order; put them back in the output's order.
    perm = tuple(sorted(range(len(order)), key=lambda i: order[i]))
    if perm != tuple(range(len(order))):
        steps.append(("transpose", perm))
    steps.append(("reshape", tuple(out_shape)))
    return _merge_reshapes(steps, tuple(in_shape))


def _merge_reshapes(steps, in_shape):
    """Consecutive reshapes are one; a reshape to the shape a value already has is none."""
    merged: list[tuple[str, object]] = []
    for step in steps:
        if step[0] == "reshape" and merged and merged[-1][0] == "reshape":
            merged[-1] = step
        else:
            merged.append(step)
    if merged and merged[0] == ("reshape", in_shape):
        merged.pop(0)
    return merged


class RewriteConstantGathers(EdgecPass):
    """Fold constant gathers; turn gathers with constant indices into reshape/slice/transpose."""

    name = "rewrite_constant_gathers"
    removes = {op: "constant indices picking an affine grid of the input (a reshape, slice or transpose), "
                   "or constant data (folded)" for op in _GATHERS}

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        names = ValueNames(graph)
        folded = rewritten = 0
        for node in list(graph):
            if node.op_type not in _GATHERS or node.domain not in ("", "ai.onnx"):
                continue
            data, indices = node.inputs[0], node.inputs[1]
            idx = const_array(indices)
            shape = static_shape(data)
            out = node.outputs[0]
            if idx is None or shape is None:
                continue
            if math.prod(shape) > _SIZE_LIMIT or idx.size > _SIZE_LIMIT:
                self.refuse(node, f"more than {_SIZE_LIMIT} elements; left as a gather")
                continue
            args = _op_args(node)
            array = const_array(data)
            if array is not None:
                value = add_initializer(graph, names, out.name or "gathered", gather(node.op_type, array, idx, **args))
                take_place_of(out, value)
                graph.remove(node, safe=True)
                folded += 1
                continue
            positions = gather(node.op_type, np.arange(math.prod(shape), dtype=np.int64).reshape(shape), idx, **args)
            steps = data_movement(positions, tuple(shape))
            if steps is None:
                self.refuse(node, "the indices pick no affine grid of the input; left as a gather")
                continue
            self._replace(graph, names, node, steps)
            rewritten += 1
        if folded:
            self.note(f"folded {folded} constant gathers")
        if rewritten:
            self.note(f"{rewritten} constant-index gathers became reshape/slice/transpose")
        return bool(folded or rewritten)

    def _replace(self, graph: ir.Graph, names: ValueNames, node: ir.Node, steps) -> None:
        out = node.outputs[0]
        base = out.name or "gather"
        current = node.inputs[0]
        new_nodes = []
        if not steps:  # the gather copies its input as it is
            steps = [("reshape", tuple(static_shape(out)))]
        for kind, arg in steps:
            if kind == "reshape":
                shape_init = add_initializer(graph, names, f"{base}_shape", np.array(arg, np.int64))
                step = ir.node("Reshape", [current, shape_init], name=names.fresh(f"{node.name}_reshape"))
                dims = arg
            elif kind == "slice":
                starts, ends = arg
                changed = [i for i, (s, e) in enumerate(zip(starts, ends)) if s != 0 or e != static_shape(current)[i]]
                inputs = [current] + [add_initializer(graph, names, f"{base}_{what}", np.array(v, np.int64))
                                      for what, v in (("starts", [starts[i] for i in changed]),
                                                      ("ends", [ends[i] for i in changed]), ("axes", changed))]
                step = ir.node("Slice", inputs, name=names.fresh(f"{node.name}_slice"))
                dims = tuple(e - s for s, e in zip(starts, ends))
            else:
                step = ir.node("Transpose", [current], attributes={"perm": list(arg)},
                               name=names.fresh(f"{node.name}_transpose"))
                dims = tuple(static_shape(current)[p] for p in arg)
            result = step.outputs[0]
            result.name = names.fresh(f"{base}_{kind}")
            result.shape = ir.Shape(dims)
            result.type = out.type
            new_nodes.append(step)
            current = result
        graph.insert_after(node, new_nodes)
        take_place_of(out, current)
        graph.remove(node, safe=True)
