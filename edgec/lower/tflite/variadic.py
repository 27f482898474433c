"""Sum and Mean of N inputs (numpy broadcasting): a chain of ADDs, then one MUL by 1/N;
Max and Min of N inputs: a chain of MAXIMUM / MINIMUM.

Model-zoo files from opset 7-9 add residual branches with one Sum of three or more
tensors. TFLite's ADD_N takes equal shapes only and XNNPACK does not delegate it; a chain
of broadcasting ADDs is delegated and costs the same number of passes over the data.
"""

from __future__ import annotations

import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.elementwise import operand, output_layout
from edgec.lower.tflite.registry import visitor


@visitor("Sum", "Mean")
def lower_sum(node: ir.Node, ctx: LoweringContext) -> None:
    perm = output_layout(ctx, node)
    inputs = [operand(ctx, v, len(perm), perm) for v in node.inputs]
    out = ctx.define(node.outputs[0], perm)
    shape = ctx.graph.shape(out)
    if len(inputs) == 1 and node.op_type == "Sum":
        ctx.emit("RESHAPE", [inputs[0], ctx.int32(shape)], [out])
        return
    scale = node.op_type == "Mean" and len(inputs) > 1
    acc = inputs[0]
    for i, other in enumerate(inputs[1:], start=1):
        last = i == len(inputs) - 1 and not scale
        dst = out if last else ctx.temp(shape, hint=f"partial{i}")
        ctx.emit("ADD", [acc, other], [dst], schema.AddOptionsT())
        acc = dst
    if scale:
        ctx.emit("MUL", [acc, ctx.float32(1.0 / len(inputs), "inverse_count")], [out], schema.MulOptionsT())
    elif len(inputs) == 1:  # Mean of one input
        ctx.emit("RESHAPE", [acc, ctx.int32(shape)], [out])


@visitor("Max", "Min")
def lower_max_min(node: ir.Node, ctx: LoweringContext) -> None:
    """Two or more inputs (one input is a copy); opset-8+ Max/Min broadcast like numpy."""
    op = "MAXIMUM" if node.op_type == "Max" else "MINIMUM"
    perm = output_layout(ctx, node)
    inputs = [operand(ctx, v, len(perm), perm) for v in node.inputs]
    out = ctx.define(node.outputs[0], perm)
    shape = ctx.graph.shape(out)
    if len(inputs) == 1:
        ctx.emit("RESHAPE", [inputs[0], ctx.int32(shape)], [out])
        return
    acc = inputs[0]
    for i, other in enumerate(inputs[1:], start=1):
        dst = out if i == len(inputs) - 1 else ctx.temp(shape, hint=f"partial{i}")
        ctx.emit(op, [acc, other], [dst])
        acc = dst
