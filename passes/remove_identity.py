"""Remove Identity and inference-mode Dropout nodes.

Both copy their input. Removing them lets BatchNorm folding see Conv -> BN directly and
spares every lowering two no-op kernels. Graph output names are the model's signature: when
the removed node wrote a graph output, the producer of its input takes over that name.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array
from edgec.passes.base import EdgecPass, take_place_of

_COPY_OPS = ("Identity", "Dropout")


def _dropout_refusal(node: ir.Node) -> str | None:
    """Why this Dropout is not a plain copy at inference time, or None when it is."""
    if any(out.uses() or out.is_graph_output() for out in node.outputs[1:]):
        return "its mask output is read"
    training_mode = node.inputs[2] if len(node.inputs) > 2 else None
    if training_mode is not None:
        flag = const_array(training_mode)
        if flag is None:
            return f"training_mode '{training_mode.name}' is not a constant"
        if bool(np.asarray(flag).item()):
            return "training_mode is true: it drops values at run time"
    return None


def _output_must_keep_a_node(node: ir.Node, x: ir.Value, y: ir.Value) -> bool:
    """Whether removing node would lose the graph-output name `y`.

    `x` can take `y`'s name only when `x` is an ordinary node output of the same graph: a graph
    input, an initializer, a value from an outer scope or another graph output already has a
    name that must not change.
    """
    if not y.is_graph_output():
        return False
    producer = x.producer()
    return producer is None or producer.graph is not node.graph or x.is_graph_output()


class RemoveIdentity(EdgecPass):
    name = "remove_identity"

    def apply(self, model: ir.Model) -> bool:
        removed = {op: 0 for op in _COPY_OPS}
        kept_as_identity = 0
        for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
            if node.op_type not in _COPY_OPS or node.domain not in ("", "ai.onnx"):
                continue
            if not node.inputs or node.inputs[0] is None:
                continue
            if node.op_type == "Dropout" and (reason := _dropout_refusal(node)) is not None:
                self.refuse(node, reason)
                continue
            x, y = node.inputs[0], node.outputs[0]
            if _output_must_keep_a_node(node, x, y):
                if node.op_type == "Dropout":
                    self._replace_with_identity(node)
                    kept_as_identity += 1
                else:
                    self.refuse(node, f"graph output '{y.name}' must stay distinct from '{x.name}'")
                continue
            graph = node.graph
            # Only a graph output's name must survive; otherwise weights and inputs keep theirs.
            take_place_of(y, x, keep_name=False)
            graph.remove(node, safe=True)
            removed[node.op_type] += 1

        for op, count in removed.items():
            if count:
                self.note(f"removed {count} {op}")
        if kept_as_identity:
            self.note(f"{kept_as_identity} Dropout between a graph input and output became Identity")
        return bool(sum(removed.values()) or kept_as_identity)

    @staticmethod
    def _replace_with_identity(dropout: ir.Node) -> None:
        identity = ir.node("Identity", [dropout.inputs[0]], name=dropout.name)
        graph = dropout.graph
        graph.insert_before(dropout, identity)
        take_place_of(dropout.outputs[0], identity.outputs[0])
        graph.remove(dropout, safe=True)
