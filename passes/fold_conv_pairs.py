"""Merge two convolutions in a row, with nothing nonlinear between them, into one.

This is the general form of VanillaNet's deploy step (two 1x1 convs, or the 4x4 stem conv and
a 1x1, become one conv), valid wherever the pattern occurs in an imported model. The
arithmetic lives in conv_algebra.py; this pass finds the pairs and decides, with a reason
for every pair it leaves alone:

- conv (kxk, any stride/padding/groups) -> 1x1 conv (stride 1, no padding, groups 1): merged
  into one conv of the first's geometry.
- 1x1 conv -> conv (kxk, groups 1): merged into one conv of the second's geometry, but only
  where that is exact: a padded kxk conv sees zeros at the border where the 1x1 conv's bias
  would have been, so a non-zero first bias with padding is refused.
- A merge that costs more multiply-accumulates than the two convs it replaces is refused:
  a 7x7 depthwise conv then a 1x1 would become a dense 7x7, many times the work.

The first conv's output must feed only the second (and not be a graph output): another
reader still needs it. Chains (conv -> conv -> conv) merge step by step.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array, static_shape
from edgec.passes.base import EdgecPass, ValueNames, add_initializer, drop_unused_initializers, take_place_of
from edgec.passes.conv_algebra import (
    ConvGeometry,
    conv_macs,
    merge_pointwise_then,
    merge_then_pointwise,
)

THEN_POINTWISE = "then_pointwise"  # survivor: the first conv (it has the spatial geometry)
POINTWISE_THEN = "pointwise_then"  # survivor: the second conv


@dataclasses.dataclass(frozen=True)
class MergePlan:
    first: ir.Node
    second: ir.Node
    order: str
    macs_separate: int
    macs_merged: int


def is_conv(node: ir.Node | None) -> bool:
    return node is not None and node.op_type == "Conv" and node.domain in ("", "ai.onnx")


def conv_geometry(node: ir.Node, weight: np.ndarray) -> ConvGeometry:
    spatial = weight.ndim - 2
    attrs = node.attributes
    ints = lambda name, default: tuple(attrs.get_ints(name, default))  # noqa: E731
    return ConvGeometry(
        kernel=tuple(weight.shape[2:]),
        strides=ints("strides", (1,) * spatial),
        pads=ints("pads", (0,) * (2 * spatial)),
        dilations=ints("dilations", (1,) * spatial),
        group=attrs.get_int("group", 1),
        auto_pad=attrs.get_string("auto_pad", "NOTSET"),
    )


def plan_merge(first: ir.Node, second: ir.Node, through: ir.Node | None = None) -> MergePlan | str:
    """How `first` -> [`through`] -> `second` merge into one conv, or why they cannot.

    `through` is an activation between the two that the caller is asking about as if it were
    the identity (used to explain what a lambda < 1 activation stands in the way of).
    """
    if not (is_conv(first) and is_conv(second)):
        return "both nodes must be ONNX Conv"
    link = through.outputs[0] if through is not None else first.outputs[0]
    for value, reader in ((first.outputs[0], through or second), (link, second)):
        if value.is_graph_output():
            return f"'{value.name}' is a graph output, which must keep its value"
        readers = {id(user) for user, _ in value.uses()}
        if readers != {id(reader)}:
            return f"'{value.name}' is read by {len(value.uses())} consumers; the others need it unmerged"
    if second.inputs[0] is not link:
        return "the first conv feeds the second's weight or bias, not its data input"
    weights = [const_array(n.inputs[1]) if len(n.inputs) > 1 else None for n in (first, second)]
    if any(w is None for w in weights):
        return "both weights must be constants"
    for node in (first, second):
        if len(node.inputs) > 2 and node.inputs[2] is not None and const_array(node.inputs[2]) is None:
            return f"the bias of '{node.name}' is not a constant"
    w1, w2 = weights
    if not (np.issubdtype(w1.dtype, np.floating) and np.issubdtype(w2.dtype, np.floating)):
        return "only float convs merge (quantized weights would need requantizing)"
    g1, g2 = conv_geometry(first, w1), conv_geometry(second, w2)

    if g2.is_pointwise:
        order = THEN_POINTWISE
    elif g1.is_pointwise:
        order = POINTWISE_THEN
        if g2.group != 1:
            return f"the second conv has group={g2.group}; a 1x1 conv merges only into a dense (group 1) conv"
        b1 = _bias(first)
        if g2.pads_anything and b1 is not None and np.any(b1 != 0):
            return ("1x1 conv with a non-zero bias then a padded conv: the padding holds zeros where "
                    "the 1x1 conv's output would hold its bias, so a merged conv differs at the borders")
    elif all(k == 1 for k in g2.kernel):
        return (f"the 1x1 conv is not a plain channel mix (strides {list(g2.strides)}, "
                f"group {g2.group}, padding {list(g2.pads)}); only stride 1, group 1, unpadded 1x1 convs merge")
    else:
        return f"neither conv is 1x1 ({list(g1.kernel)} then {list(g2.kernel)}); merging would grow the kernel"

    separate, merged = _costs(first, second, w1, w2, order)
    if merged > separate:
        return (f"merging would raise the cost from {separate:,} to {merged:,} MACs "
                f"({merged / separate:.1f}x): {_why_costlier(g1, w1, w2, order)}")
    return MergePlan(first, second, order, separate, merged)


def apply_merge(graph: ir.Graph, names: ValueNames, plan: MergePlan) -> ir.Node:
    """Rewrite the pair into one Conv (in place); return the surviving node."""
    first, second = plan.first, plan.second
    w1, w2 = const_array(first.inputs[1]), const_array(second.inputs[1])
    old = [first.inputs[1], second.inputs[1], _bias_value(first), _bias_value(second)]
    if plan.order == THEN_POINTWISE:
        weight, bias = merge_then_pointwise(w1, _bias(first), conv_geometry(first, w1).group, w2, _bias(second))
        survivor, removed = first, second
        survivor.attributes["group"] = ir.AttrInt64("group", 1)
    else:
        weight, bias = merge_pointwise_then(w1, _bias(first), w2, _bias(second))
        survivor, removed = second, first
    base = survivor.name or survivor.outputs[0].name
    survivor.replace_input_with(1, add_initializer(graph, names, f"{base}_merged_weight", weight))
    if len(survivor.inputs) < 3:
        survivor.resize_inputs(3)
    survivor.replace_input_with(2, add_initializer(graph, names, f"{base}_merged_bias", bias))
    if "kernel_shape" in survivor.attributes:
        survivor.attributes["kernel_shape"] = ir.AttrInt64s("kernel_shape", list(weight.shape[2:]))

    if plan.order == THEN_POINTWISE:
        take_place_of(second.outputs[0], first.outputs[0])
    else:
        second.replace_input_with(0, first.inputs[0])
    graph.remove(removed, safe=True)
    drop_unused_initializers(graph, old)
    return survivor


class FoldConvPairs(EdgecPass):
    name = "fold_conv_pairs"

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        names = ValueNames(graph)
        merged = saved = 0
        for second in list(graph):
            if second.graph is None or not is_conv(second) or not second.inputs or second.inputs[0] is None:
                continue  # removed by an earlier merge, or not a conv
            first = second.inputs[0].producer()
            if not is_conv(first) or first.graph is not graph:
                continue
            plan = plan_merge(first, second)
            if isinstance(plan, str):
                self.refuse(second, f"not merged with '{first.name}': {plan}")
                continue
            apply_merge(graph, names, plan)
            merged += 1
            saved += plan.macs_separate - plan.macs_merged
        if merged:
            self.note(f"merged {merged} conv pair(s) into single convs ({saved:,} MACs fewer)")
        return merged > 0


def _bias_value(node: ir.Node) -> ir.Value | None:
    return node.inputs[2] if len(node.inputs) > 2 else None


def _bias(node: ir.Node) -> np.ndarray | None:
    value = _bias_value(node)
    return const_array(value) if value is not None else None


def _why_costlier(g1: ConvGeometry, w1: np.ndarray, w2: np.ndarray, order: str) -> str:
    c_in, c_mid, c_out = w1.shape[1] * g1.group, w1.shape[0], w2.shape[0]
    if order == THEN_POINTWISE and g1.group > 1:
        kernel = "x".join(map(str, g1.kernel))
        kind = "depthwise" if g1.group == c_in else f"group-{g1.group}"
        return f"a {kernel} {kind} conv then a 1x1 would become a dense {kernel} conv"
    return f"mapping {c_in} channels straight to {c_out} costs more than through the {c_mid}-channel middle"


def _pixels(value: ir.Value) -> int | None:
    shape = static_shape(value)
    return int(math.prod(shape[2:])) if shape is not None and len(shape) > 2 else None


def _costs(first: ir.Node, second: ir.Node, w1: np.ndarray, w2: np.ndarray, order: str) -> tuple[int, int]:
    """MACs of the two convs as they are, and of the merged conv (same batch)."""
    mid = _pixels(first.outputs[0])
    out = _pixels(second.outputs[0])
    if mid is None or out is None:
        # Without shapes: the 1x1 conv keeps the pixel count; a strided conv divides it.
        g = conv_geometry(second if order == POINTWISE_THEN else first, w2 if order == POINTWISE_THEN else w1)
        out = 1
        mid = math.prod(g.strides) if order == POINTWISE_THEN else 1
    c_out, c_in = w2.shape[0], w1.shape[1] * conv_geometry(first, w1).group
    if order == THEN_POINTWISE:
        merged_shape = (c_out, c_in, *w1.shape[2:])
    else:
        merged_shape = (c_out, c_in, *w2.shape[2:])
    separate = conv_macs(w1.shape, mid) + conv_macs(w2.shape, out)
    return separate, conv_macs(merged_shape, out)
