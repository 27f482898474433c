"""Lower the float NCHW ONNX IR to a TFLite flatbuffer (fp32), written atomically.

    check every node      -> one UnsupportedOpsError listing all that cannot lower
    find fused patterns   -> e.g. the erf form of GELU becomes one GELU
    visit nodes in order  -> TFLite ops in NHWC; layout changes only where an op needs one
    bind graph outputs    -> same names, shapes (NCHW) and order as the ONNX graph
    serialize, write      -> report dict (op counts, tensors, bytes, layout transposes)

The artifact keeps the ONNX graph's signature, so it is verified against onnxruntime on the
same inputs.
"""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir

from edgec.errors import UnsupportedOpsError
from edgec.fsutil import atomic_write_bytes
from edgec.ir import node_label
from edgec.lower.tflite import (  # noqa: F401 (importing a visitor module registers its ops)
    activations,
    conv,
    elementwise,
    linear,
    normalization,
    pooling,
    reduce,
    resize,
    shape_ops,
)
from edgec.lower.tflite.builder import TFLiteGraph
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.patterns import Fusion, find_fusions
from edgec.lower.tflite.registry import VISITORS, check_node, check_signature_value
from edgec.targets import Target

__all__ = ["lower_tflite", "unsupported_nodes", "build_flatbuffer"]


def lower_tflite(model: ir.Model, target: Target, out_path: str | Path) -> dict:
    """Write `model` as a TFLite flatbuffer at `out_path`; returns the compile report entry."""
    out_path = Path(out_path)
    problems = unsupported_nodes(model.graph)
    if problems:
        raise UnsupportedOpsError(target.name, "tflite", problems)
    data, ctx, fusions = build_flatbuffer(model, description=f"edgec {target.name}")
    atomic_write_bytes(out_path, data)
    graph = ctx.graph
    return {
        "format": "tflite",
        "path": str(out_path),
        "size_bytes": len(data),
        "ops": graph.op_counts(),
        "num_ops": len(graph.operators),
        "num_tensors": len(graph.tensors),
        "num_constant_buffers": len(graph.buffers) - 1,
        "layout_transposes": ctx.layout_transposes,
        "layout_reshapes": ctx.layout_reshapes,
        "onnx_nodes": sum(1 for _ in model.graph),
        # ONNX nodes folded into another op: activations, bias Adds, erf-GELU patterns.
        "onnx_nodes_fused": len(ctx.claimed),
        "fused_patterns": {"gelu_erf": sum(1 for f in fusions if f.op == "GELU")},
        "inputs": [{"name": graph.name(t), "shape": list(graph.shape(t))} for t in graph.inputs],
        "outputs": [{"name": graph.name(t), "shape": list(graph.shape(t))} for t in graph.outputs],
    }


def unsupported_nodes(graph: ir.Graph) -> list[tuple[str, str, str]]:
    """(node name, op type, why) for every node the TFLite lowering cannot take."""
    fused = {n for f in find_fusions(graph) for n in f.nodes}
    problems = []
    for kind, values in (("graph input", graph.inputs), ("graph output", graph.outputs)):
        for value in values:
            why = check_signature_value(value)
            if why:
                problems.append((value.name, kind, why))
    for node in graph:
        if node in fused or _is_dead(node):
            continue
        why = check_node(node)
        if why:
            problems.append((node_label(node), node.op_type, why))
    return problems


def build_flatbuffer(model: ir.Model, description: str = "edgec") -> tuple[bytes, LoweringContext, list[Fusion]]:
    """The flatbuffer bytes for a model that passed `unsupported_nodes`."""
    graph = model.graph
    ctx = LoweringContext(TFLiteGraph(description))
    for value in graph.inputs:
        ctx.graph.inputs.append(ctx.define(value))

    fusions = find_fusions(graph)
    fusion_of = {n: f for f in fusions for n in f.nodes}
    for node in graph:
        if node in ctx.claimed or _is_dead(node):
            continue
        ctx.node = node
        fusion = fusion_of.get(node)
        if fusion is not None:
            _lower_fusion(ctx, fusion)
        else:
            VISITORS[node.op_type].lower(node, ctx)
    ctx.node = None

    for value in graph.outputs:
        ctx.graph.outputs.append(_bind_output(ctx, value))
    return ctx.graph.serialize(), ctx, fusions


def _is_dead(node: ir.Node) -> bool:
    return all(v is None or (not v.uses() and not v.is_graph_output()) for v in node.outputs)


def _lower_fusion(ctx: LoweringContext, fusion: Fusion) -> None:
    from ai_edge_litert import schema_py_generated as schema

    for node in fusion.nodes:
        ctx.claim(node)
    perm = ctx.perm(fusion.x)
    out = ctx.define(fusion.output, perm)
    ctx.emit("GELU", [ctx.tensor(fusion.x, perm)], [out], schema.GeluOptionsT(approximate=False))


def _bind_output(ctx: LoweringContext, value: ir.Value) -> int:
    """The tensor for graph output `value`: ONNX layout, ONNX name, not shared with another
    input/output slot and not a constant (TFLite outputs must be computed tensors)."""
    graph = ctx.graph
    tensor = ctx.tensor(value)
    taken = set(graph.inputs) | set(graph.outputs)
    if tensor in taken or graph.is_const(tensor):
        copy = graph.add_tensor(value.name, graph.shape(tensor), graph.tensors[tensor].type)
        graph.add_op("RESHAPE", [tensor, ctx.int32(graph.shape(tensor))], [copy])
        tensor = copy
    graph.rename(tensor, value.name)
    return tensor
