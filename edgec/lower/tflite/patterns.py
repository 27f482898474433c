"""Multi-node ONNX patterns that lower to one TFLite op.

The exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))), arrives as five nodes from exporters
that predate ONNX's Gelu (opset 20); TFLite has no ERF, so the whole pattern must become
GELU or the model cannot lower at all.
"""

from __future__ import annotations

import dataclasses
import math

import onnx_ir as ir

from edgec.ir import const_array


@dataclasses.dataclass(frozen=True)
class Fusion:
    op: str  # "GELU"
    nodes: tuple[ir.Node, ...]  # every node the fused op replaces
    x: ir.Value
    output: ir.Value


def _is_const(value: ir.Value | None, expected: float, rel: float = 1e-4) -> bool:
    array = const_array(value)
    return array is not None and array.size == 1 and math.isclose(float(array.reshape(-1)[0]), expected, rel_tol=rel)


def _sole_consumer(value: ir.Value) -> ir.Node | None:
    if value.is_graph_output() or len(value.uses()) != 1:
        return None
    return next(iter(value.consumers()))


def _other(node: ir.Node, value: ir.Value) -> ir.Value | None:
    """The other input of a binary node that reads `value`."""
    if len(node.inputs) != 2:
        return None
    a, b = node.inputs
    return b if a is value else a if b is value else None


def _is_op(node: ir.Node | None, op: str) -> bool:
    return node is not None and node.op_type == op and node.domain in ("", "ai.onnx")


def _match_erf_gelu(erf: ir.Node) -> Fusion | None:
    scaled = erf.inputs[0]
    pre = scaled.producer()
    if _sole_consumer(scaled) is not erf:
        return None
    if _is_op(pre, "Div") and _is_const(pre.inputs[1], math.sqrt(2)):
        x = pre.inputs[0]
    elif _is_op(pre, "Mul") and _is_const(pre.inputs[1], 1 / math.sqrt(2)):
        x = pre.inputs[0]
    elif _is_op(pre, "Mul") and _is_const(pre.inputs[0], 1 / math.sqrt(2)):
        x = pre.inputs[1]
    else:
        return None
    add = _sole_consumer(erf.outputs[0])
    if not _is_op(add, "Add") or not _is_const(_other(add, erf.outputs[0]), 1.0):
        return None
    m1 = _sole_consumer(add.outputs[0])
    if not _is_op(m1, "Mul"):
        return None
    other = _other(m1, add.outputs[0])
    if other is x:  # ((1 + erf) * x) * 0.5
        m2 = _sole_consumer(m1.outputs[0])
        if _is_op(m2, "Mul") and _is_const(_other(m2, m1.outputs[0]), 0.5):
            return Fusion("GELU", (pre, erf, add, m1, m2), x, m2.outputs[0])
    elif _is_const(other, 0.5):  # ((1 + erf) * 0.5) * x
        m2 = _sole_consumer(m1.outputs[0])
        if _is_op(m2, "Mul") and _other(m2, m1.outputs[0]) is x:
            return Fusion("GELU", (pre, erf, add, m1, m2), x, m2.outputs[0])
    elif other is not None and _is_op(other.producer(), "Mul") and _sole_consumer(other) is m1:
        half = other.producer()  # (x * 0.5) * (1 + erf)
        if _other(half, x) is not None and _is_const(_other(half, x), 0.5):
            return Fusion("GELU", (half, pre, erf, add, m1), x, m1.outputs[0])
    return None


def find_fusions(graph: ir.Graph) -> list[Fusion]:
    return [f for node in graph if _is_op(node, "Erf") and (f := _match_erf_gelu(node)) is not None]
