"""Which nodes of a quantized graph become int8 TFLite ops, and why the others stay float.

A node runs in int8 when the QDQ graph says it does (every activation it reads and writes
is quantized, and its weights and constant operands are integer constants) and its
visitor has an int8 lowering for it. Every other node that touches a quantized value is a
float island: DEQUANTIZE before it, QUANTIZE after it, exactly what the QDQ graph computes
there (e.g. LayerNormalization, Gelu, Div, which have no int8 kernel).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array, node_label
from edgec.lower.tflite.qdq import QuantizedGraph
from edgec.lower.tflite.registry import VISITORS

# Ops whose constant inputs are operands (quantized by the QDQ graph); elsewhere constant
# inputs are shapes, axes, pads or bounds that the visitors read at compile time.
_CONSTANT_OPERANDS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul", "PRelu", "Concat"}
# Ops whose weights (input 1) TFLite wants integer with zero point 0.
_WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
# TFLite int8 kernels that pass values through without rescaling: the input's and output's
# parameters must be one (the quantize pass ties them; a foreign QDQ graph may not).
_SAME_PARAMS = {"MaxPool", "AveragePool", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat",
                "Split", "Slice", "Pad", "Resize", "Identity", "Dropout"}


@dataclasses.dataclass
class IntegerPlan:
    integer: set[ir.Node]
    float_islands: list[dict]  # {"node", "op", "why"} for float nodes next to int8 values


def plan_integer_nodes(graph: ir.Graph, quant: QuantizedGraph) -> IntegerPlan:
    integer, islands = set(), []
    for node in graph:
        if node.op_type == "Constant":
            continue
        why = _why_float(node, quant)
        if why is None:
            integer.add(node)
        elif _touches_int8(node, quant):
            islands.append({"node": node_label(node), "op": node.op_type, "why": why})
    return IntegerPlan(integer, islands)


def _read_outputs(node: ir.Node) -> list[ir.Value]:
    return [v for v in node.outputs if v is not None and (v.uses() or v.is_graph_output())]


def _activations(node: ir.Node) -> list[ir.Value]:
    return [v for v in node.inputs if v is not None and const_array(v) is None]


def _touches_int8(node: ir.Node, quant: QuantizedGraph) -> bool:
    values = _activations(node) + _read_outputs(node) + [v for v in node.inputs if v in quant.constants]
    return any(quant.params(v) is not None or v in quant.constants for v in values)


def _why_float(node: ir.Node, quant: QuantizedGraph) -> str | None:
    """Why `node` stays float, or None when it lowers to int8."""
    visitor = VISITORS.get(node.op_type)
    if visitor is None or visitor.int8 is None:
        return "no int8 lowering for this op"
    for v in _activations(node):
        if quant.params(v) is None:
            return f"input '{v.name}' is float in the quantized graph"
    for v in _read_outputs(node):
        if quant.params(v) is None:
            return f"output '{v.name}' is float in the quantized graph"
    if node.op_type in _CONSTANT_OPERANDS:
        for v in node.inputs:
            if v is not None and const_array(v) is not None and v not in quant.constants:
                return f"constant operand '{v.name}' is not quantized"
    if node.op_type in _WEIGHTED and len(node.inputs) > 1 and node.inputs[1] in quant.constants:
        w = quant.constants[node.inputs[1]]
        if w.bits not in (4, 8) or np.any(w.zero_point != 0):
            return "weights are not symmetric int8/int4 (zero point 0), as TFLite's kernels need"
    if node.op_type in _SAME_PARAMS:
        params = {quant.params(v) for v in _activations(node)[:1] + _read_outputs(node)}
        if node.op_type == "Concat":
            params |= {quant.params(v) for v in _activations(node)}
        if len(params) > 1:
            return "input and output quantization differ; the TFLite int8 kernel needs them equal"
    return visitor.int8(node)
