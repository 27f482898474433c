"""Lower the NCHW ONNX IR to a TFLite flatbuffer (fp32, or int8 from a QDQ graph), written atomically.

    read QDQ (int8)       -> a float-shaped graph plus each tensor's int8 parameters (qdq.py)
    plan int8 (int8)      -> which nodes are int8 ops, which stay float islands (integer_plan.py)
    check every node      -> one UnsupportedOpsError listing all that cannot lower
    find fused patterns   -> e.g. the erf form of GELU becomes one GELU
    visit nodes in order  -> TFLite ops in NHWC; layout changes only where an op needs one
    bind graph outputs    -> same names, shapes (NCHW) and order as the ONNX graph
    sparse weights        -> sparse targets: pruned 1x1 conv / FC weights compressed + DENSIFY (sparse.py)
    serialize, write      -> report dict (op counts, tensors, bytes, layout transposes)

The artifact keeps the ONNX graph's signature, so it is verified against onnxruntime on the
same inputs. A quantized artifact does too by default (`io="float"`: QUANTIZE after each
input, DEQUANTIZE before each output, a drop-in replacement); with `io="int8"` its quantized
inputs and outputs are int8 tensors carrying their scale and zero point.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx_ir as ir

from edgec.errors import EdgecError, UnsupportedOpsError
from edgec.fsutil import atomic_write_bytes
from edgec.ir import node_label
from edgec.lower.tflite import (  # noqa: F401 (importing a visitor module registers its ops)
    activations,
    conv,
    elementwise,
    gather,
    layout,
    linear,
    logic,
    normalization,
    pooling,
    quantized,
    reduce,
    resize,
    shape_ops,
    variadic,
)
from edgec.lower.tflite.builder import TFLiteGraph
from edgec.lower.tflite.context import Held, LoweringContext
from edgec.lower.tflite.integer_plan import plan_integer_nodes
from edgec.lower.tflite.kernel_limits import check_kernel_limits
from edgec.lower.tflite.patterns import Fusion, find_fusions
from edgec.lower.tflite.rank_lift import lift_ranks
from edgec.lower.tflite.qdq import QuantizedGraph, has_qdq, read_qdq
from edgec.lower.tflite.registry import VISITORS, check_node, check_signature_value
from edgec.lower.tflite.sparse import sparsify_weights
from edgec.targets import Target

__all__ = ["lower_tflite", "unsupported_nodes", "build_flatbuffer", "IO_MODES"]

# Signature tensors of a quantized artifact: float (QUANTIZE/DEQUANTIZE inside) or int8.
IO_MODES = ("float", "int8")


def lower_tflite(model: ir.Model, target: Target, out_path: str | Path, *, io: str | None = None) -> dict:
    """Write `model` as a TFLite flatbuffer at `out_path`; returns the compile report entry.

    A model with QuantizeLinear/DequantizeLinear nodes lowers to int8. `io` (default: the
    target's `io` option, else "float") picks float or int8 inputs and outputs.
    """
    out_path = Path(out_path)
    io = io or target.options.get("io", "float")
    if io not in IO_MODES:
        raise EdgecError(f"io='{io}'; expected one of {', '.join(IO_MODES)}")
    quant = read_qdq(model) if has_qdq(model) else None
    if quant is None:  # 1-D/3-D convs and pools, 1-D MatMul operands as 2-D ops (rank_lift.py)
        model = lift_ranks(model)
    sparse = bool(target.options.get("sparse", False))
    if sparse and quant is not None:
        raise EdgecError(f"target '{target.name}' is sparse, but the model is quantized: XNNPACK's sparse "
                         "kernels are fp32 (fp16 on ARM) only; compile the float model")
    problems = unsupported_nodes(quant.model if quant else model)
    if problems:
        raise UnsupportedOpsError(target.name, "tflite", problems)
    data, ctx, fusions = build_flatbuffer(model, description=f"edgec {target.name}", io=io, quant=quant,
                                          sparse=sparse)
    declined = []
    if quant is not None:  # a file XNNPACK refuses to prepare is never written
        declined = check_kernel_limits(ctx.graph, target.name)
    atomic_write_bytes(out_path, data)
    graph = ctx.graph
    report = {
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
        "inputs": [_signature_entry(graph, t) for t in graph.inputs],
        "outputs": [_signature_entry(graph, t) for t in graph.outputs],
    }
    if quant is not None:
        report["quantized"] = _quantized_summary(ctx, io)
        # int8 ratios outside XNNPACK's add/multiply/requantize ranges: those ops run on LiteRT's kernels.
        report["quantized"]["xnnpack_declines"] = declined
    if sparse:
        report["sparse"] = _sparse_summary(model, ctx)
    return report


def _sparse_summary(model: ir.Model, ctx: LoweringContext) -> dict:
    """The weights stored sparse, and whether XNNPACK should run the model with its sparse
    kernels (predicted from the IR; the reasons when not)."""
    from edgec.analyze.sparse import analyze

    verdict = analyze(model)
    return {"encoded_weights": ctx.sparse_weights, "summary": verdict.summary(), **verdict.as_dict()}


def _signature_entry(graph: TFLiteGraph, tensor: int) -> dict:
    entry = {"name": graph.name(tensor), "shape": list(graph.shape(tensor))}
    params = quantized.tensor_params(graph.tensors[tensor])
    if params is not None:  # what a caller of an int8-I/O model quantizes with
        entry.update(dtype="int8", scale=params.scale, zero_point=params.zero_point)
    return entry


def _quantized_summary(ctx: LoweringContext, io: str) -> dict:
    graph = ctx.graph
    # Quantized tensors by type (int32 ones are biases; shape operands carry no quantization).
    types = collections.Counter(t.type for t in graph.tensors if t.quantization is not None)
    int8_ops = sum(1 for op in graph.operators
                   if op.outputs and graph.tensors[op.outputs[0]].type == quantized.INT8
                   and graph.op_name(op) != "QUANTIZE")
    return {
        "io": io,
        "int8_tensors": types[quantized.INT8],
        "int4_tensors": types[quantized.INT4],
        "int32_bias_tensors": types[quantized.INT32],
        "int8_ops": int8_ops,
        # 16x8 layers (int16 activations, int8 weights, int64 bias), when the graph has them.
        **({"int16_tensors": types[quantized.INT16], "int64_bias_tensors": types[quantized.INT64],
            "int16_ops": sum(1 for op in graph.operators if op.outputs and graph.op_name(op) != "QUANTIZE"
                             and graph.tensors[op.outputs[0]].type == quantized.INT16)}
           if types[quantized.INT16] else {}),
        "quantize_ops": sum(1 for op in graph.operators if graph.op_name(op) == "QUANTIZE"),
        "dequantize_ops": sum(1 for op in graph.operators if graph.op_name(op) == "DEQUANTIZE"),
        # Nodes that stay float between DEQUANTIZE and QUANTIZE, and why.
        "float_islands": ctx.plan.float_islands if ctx.plan else [],
        # ONNX value -> [int8 tensor index in the file, permutation from ONNX layout]: what the
        # layer-by-layer verification (edgec.faithfulness) compares with the QDQ graph.
        "tensor_map": {name: [int(h.tensor), [int(p) for p in h.perm]]
                       for name, h in ctx.quantized_values().items()},
    }


def unsupported_nodes(model: ir.Model | ir.Graph) -> list[tuple[str, str, str]]:
    """(node name, op type, why) for every node the TFLite lowering cannot take (a model's
    QDQ nodes are read as int8 parameters first, as `lower_tflite` does)."""
    if isinstance(model, ir.Model):
        graph = read_qdq(model).model.graph if has_qdq(model) else model.graph
    else:
        graph = model
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


def build_flatbuffer(model: ir.Model, description: str = "edgec", io: str = "float",
                     quant: QuantizedGraph | None = None, sparse: bool = False
                     ) -> tuple[bytes, LoweringContext, list[Fusion]]:
    """The flatbuffer bytes for a model that passed `unsupported_nodes` (`quant`: the model's
    QDQ form already read, else it is read here when the model has one). `sparse`: shape the
    graph for XNNPACK's sparse kernels and store pruned weights compressed (float only)."""
    if quant is None and has_qdq(model):
        quant = read_qdq(model)
    graph = quant.model.graph if quant else model.graph
    ctx = LoweringContext(TFLiteGraph(description), quant)
    ctx.sparse = sparse
    ctx.plan = plan_integer_nodes(graph, quant) if quant else None
    for value in graph.inputs:
        ctx.graph.inputs.append(_bind_input(ctx, value, io))

    fusions = find_fusions(graph)
    fusion_of = {n: f for f in fusions for n in f.nodes}
    for node in graph:
        if node in ctx.claimed or _is_dead(node):
            continue
        ctx.node = node
        fusion = fusion_of.get(node)
        # A fused pattern runs in float: its inner quantization points are not kept.
        ctx.integer = fusion is None and ctx.plan is not None and node in ctx.plan.integer
        if fusion is not None:
            _lower_fusion(ctx, fusion)
        else:
            VISITORS[node.op_type].lower(node, ctx)
        ctx.finish_node()
    ctx.node = None

    ctx.integer = True  # outputs leave in int8 layouts; DEQUANTIZE comes last
    for value in graph.outputs:
        ctx.graph.outputs.append(_bind_output(ctx, value, io))
    ctx.sparse_weights = sparsify_weights(ctx.graph) if sparse else []
    return ctx.graph.serialize(), ctx, fusions


def _bind_input(ctx: LoweringContext, value: ir.Value, io: str) -> int:
    """The signature tensor for graph input `value`; a quantized one is QUANTIZEd right away
    unless the caller feeds int8 (io="int8")."""
    params = ctx.qparams(value)
    if params is None or io == "int8":
        ctx.integer = params is not None
        tensor = ctx.define(value)
        ctx.integer = False
        return tensor
    shape = ctx.shape(value)
    tensor = ctx.graph.add_tensor(value.name, shape, np.float32)
    ctx.hold(value, Held(ctx.quantize(tensor, params, f"{value.name}/quantized"), layout.identity(len(shape))))
    return tensor


def _is_dead(node: ir.Node) -> bool:
    return all(v is None or (not v.uses() and not v.is_graph_output()) for v in node.outputs)


def _lower_fusion(ctx: LoweringContext, fusion: Fusion) -> None:
    from ai_edge_litert import schema_py_generated as schema

    for node in fusion.nodes:
        ctx.claim(node)
    perm = ctx.perm(fusion.x)
    out = ctx.define(fusion.output, perm)
    ctx.emit("GELU", [ctx.tensor(fusion.x, perm)], [out], schema.GeluOptionsT(approximate=False))


def _bind_output(ctx: LoweringContext, value: ir.Value, io: str) -> int:
    """The tensor for graph output `value`: ONNX layout, ONNX name, not shared with another
    input/output slot and not a constant (TFLite outputs must be computed tensors); float
    unless the caller takes int8 (io="int8")."""
    graph = ctx.graph
    tensor = ctx.tensor(value)
    if io == "float" and ctx.tensor_params(tensor) is not None:
        tensor = ctx.dequantize(tensor, value.name)
    taken = set(graph.inputs) | set(graph.outputs)
    if tensor in taken or graph.is_const(tensor):
        src = graph.tensors[tensor]
        copy = graph.add_tensor(value.name, graph.shape(tensor), src.type, quantization=src.quantization)
        graph.add_op("RESHAPE", [tensor, ctx.int32(graph.shape(tensor))], [copy])
        tensor = copy
    graph.rename(tensor, value.name)
    return tensor
