"""VanillaNet's deploy step as a graph pass: identity activations go, then conv chains merge.

VanillaNet (Chen et al., 2023) trains each layer as conv -> A'(x) -> conv with
A'(x) = (1 - lambda) A(x) + lambda x; for A = ReLU that is LeakyRelu with slope lambda, and
lambda reaches 1 by the end of training. What the exporter then writes is LeakyRelu(alpha=1)
(or PRelu with an all-ones slope): the identity. This pass

1. removes LeakyRelu(alpha = 1) and PRelu(constant slope, all ones) anywhere: exact;
2. merges the conv pairs that the removal leaves back to back (fold_conv_pairs.py: the
   kxk -> 1x1 and 1x1 -> kxk merges, with its exactness and cost refusals).

A LeakyRelu/PRelu with slope < 1 between two convs that would otherwise merge is refused
with the reason: it is a model still in deep training (lambda < 1), and merging across it
changes the output (7.6% error was reported at lambda = 0.9; on the zoo's VanillaNet-5 with
random weights, treating lambda = 0.9 as 1 gave a 2.8x relative L2 output error). Other
nonlinearities (ReLU, SiLU, ...) between convs are simply not linear and need no explanation.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array
from edgec.passes.base import EdgecPass, drop_unused_initializers, take_place_of
from edgec.passes.fold_conv_pairs import FoldConvPairs, is_conv, plan_merge

_SLOPED = ("LeakyRelu", "PRelu")


def identity_slope(node: ir.Node) -> float | np.ndarray | None:
    """The negative-side slope of a LeakyRelu/PRelu (a float or the PRelu slope array), or
    None when it is not a constant."""
    if node.op_type == "LeakyRelu":
        return node.attributes.get_float("alpha", 0.01)
    slope = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    return None if slope is None else np.asarray(slope)


def is_identity_activation(node: ir.Node) -> bool:
    if node.op_type not in _SLOPED or node.domain not in ("", "ai.onnx"):
        return False
    slope = identity_slope(node)
    return slope is not None and bool(np.all(np.asarray(slope) == 1.0))


class FoldActivations(EdgecPass):
    name = "fold_activations"

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        removed = 0
        for node in list(graph):
            if is_identity_activation(node):
                removed += self._remove(graph, node)
        if removed:
            self.note(f"removed {removed} identity activation(s) (LeakyRelu alpha=1 / PRelu slope 1)")
        self._explain_blending_activations(graph)

        merger = FoldConvPairs()
        merged = merger.apply(model)
        self.details += merger.details
        self.refusals += merger.refusals
        return bool(removed) or merged

    def _remove(self, graph: ir.Graph, node: ir.Node) -> int:
        x, y = node.inputs[0], node.outputs[0]
        producer = x.producer()
        if y.is_graph_output() and (producer is None or producer.graph is not graph or x.is_graph_output()):
            self.refuse(node, f"kept: graph output '{y.name}' must stay distinct from '{x.name}'")
            return 0
        inputs = list(node.inputs)
        take_place_of(y, x, keep_name=False)
        graph.remove(node, safe=True)
        drop_unused_initializers(graph, inputs[1:])
        return 1

    def _explain_blending_activations(self, graph: ir.Graph) -> None:
        """Refuse, with the reason, each lambda < 1 activation that alone keeps two convs apart."""
        for node in graph:
            if node.op_type not in _SLOPED or node.domain not in ("", "ai.onnx"):
                continue
            first = node.inputs[0].producer() if node.inputs[0] is not None else None
            users = [user for user, _ in node.outputs[0].uses()]
            if not is_conv(first) or len(users) != 1 or not is_conv(users[0]):
                continue
            if isinstance(plan_merge(first, users[0], through=node), str):
                continue  # the convs would not merge anyway; the activation is not the reason
            slope = identity_slope(node)
            shown = "not a constant" if slope is None else (
                f"{float(slope):g}" if np.ndim(slope) == 0 else f"{float(np.min(slope)):g}..{float(np.max(slope)):g}")
            self.refuse(node, (
                f"not folded: slope (lambda) {shown} is not 1, so this {node.op_type} is not the identity "
                f"and '{first.name}' and '{users[0].name}' cannot merge without changing the output; "
                "finish deep training to lambda = 1 (edgec.training.deep_training) before compiling"))
