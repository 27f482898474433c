"""Reductions over dimensions of size 1 are reshapes: rewrite them as such.

A network whose feature map has shrunk to 1x1 (MobileNet on 28x28 MNIST, any stride-32 net at
32x32) still ends in a global average pool. Lowered as MEAN it is a real kernel call; as a
Reshape it is a no-op that the TFLite lowering folds into its neighbours (the TFLite converter
does the same). Exact: the mean (or max) of one element is that element.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array, static_shape
from edgec.passes.base import EdgecPass, ValueNames, add_initializer, take_place_of

REDUCTIONS = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "GlobalAveragePool", "GlobalMaxPool"}


def _reduced_axes(node: ir.Node, rank: int) -> list[int] | None:
    if node.op_type.startswith("Global"):
        return list(range(2, rank))
    given = len(node.inputs) > 1 and node.inputs[1] is not None
    axes = const_array(node.inputs[1]) if given else None
    if given and axes is None:
        return None  # axes computed at run time
    if axes is None or axes.size == 0:  # no axes, or an empty list: every axis (unless noop)
        if node.attributes.get_int("noop_with_empty_axes", 0):
            return []
        return list(range(rank))
    return [int(a) % rank for a in np.atleast_1d(axes)]


class RemoveTrivialReductions(EdgecPass):
    name = "remove_trivial_reductions"

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        names = ValueNames(graph)
        count = 0
        for node in list(graph):
            if node.op_type not in REDUCTIONS or node.domain not in ("", "ai.onnx"):
                continue
            x, y = node.inputs[0], node.outputs[0]
            in_shape, out_shape = static_shape(x), static_shape(y)
            if in_shape is None or out_shape is None:
                continue
            axes = _reduced_axes(node, len(in_shape))
            if axes is None or any(in_shape[a] != 1 for a in axes):
                continue
            shape = add_initializer(graph, names, f"{y.name}_shape", np.asarray(out_shape, np.int64))
            reshape = ir.node("Reshape", [x, shape], name=f"{node.name or y.name}_as_reshape")
            graph.insert_before(node, reshape)
            take_place_of(y, reshape.outputs[0])
            graph.remove(node, safe=True)
            count += 1
        if count:
            self.note(f"turned {count} reduction(s) over size-1 dimensions into Reshape")
        return bool(count)
