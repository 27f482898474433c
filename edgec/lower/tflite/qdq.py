"""Read a QDQ graph (passes/quantize.py's form) as a float graph plus quantization facts.

The op visitors are written against float ONNX graphs. Rather than teach each of them the
QuantizeLinear/DequantizeLinear plumbing, the QDQ nodes are taken out of a copy of the graph
and their meaning is kept on the side:

- an activation pair  t -> Q -> t_q -> DQ -> t'  becomes plain  t  (every reader of t' reads t)
  with `activations[t]` = its int8 scale and zero point: one int8 tensor in TFLite;
- a constant behind a DQ (weights, int32 biases, constant operands) becomes a float constant
  holding exactly what the DQ computes, with `constants[value]` = its integers and per-axis
  parameters, so an integer op can store the integers and a float op the floats;
- a value between an integer producer and a Relu/Clip fused into it (no QDQ there) takes the
  activation's parameters in `inherited`: where TFLite cannot fuse the clamp, the producer
  writes an int8 tensor with those parameters and the clamp runs in int8 on it, which
  computes the same integers because quantization is monotonic.

The graph left over has the float graph's structure, so fusions, layouts and checks work as
for fp32; what differs is only which tensors are int8 (the context's business).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from edgec.errors import EdgecError
from edgec.ir import clone, const_array, node_label

_QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_FUSED_ACTIVATIONS = ("Relu", "Clip")


class QDQFormError(EdgecError):
    """The quantized graph is not in the QDQ form the TFLite lowering reads."""


@dataclasses.dataclass(frozen=True)
class ActivationParams:
    """Per-tensor int8 (or, in 16x8 layers, int16) quantization of an activation."""

    scale: float  # a float32 value, kept exactly as the graph stores it
    zero_point: int
    bits: int = 8


@dataclasses.dataclass(frozen=True)
class QuantizedConstant:
    """The integers behind a DequantizeLinear of a constant."""

    values: np.ndarray  # int8 (int4 weights held in int8), or int32 for biases
    scale: np.ndarray  # float32, 1-D per axis or 0-D per tensor
    zero_point: np.ndarray  # int, same shape as scale
    axis: int | None  # the quantized axis (ONNX layout) when per-axis
    bits: int  # 4, 8 or 32

    @property
    def per_axis(self) -> bool:
        return self.axis is not None


@dataclasses.dataclass
class QuantizedGraph:
    model: ir.Model  # the graph without QDQ nodes
    activations: dict[ir.Value, ActivationParams]
    constants: dict[ir.Value, QuantizedConstant]
    inherited: dict[ir.Value, ActivationParams]

    def params(self, value: ir.Value) -> ActivationParams | None:
        """The int8 parameters of an activation (its own, or inherited from a fused clamp)."""
        return self.activations.get(value) or self.inherited.get(value)

    def is_quantization_point(self, value: ir.Value) -> bool:
        """True where the QDQ graph rounds to int8: no fusion may reach across it."""
        return value in self.activations


def has_qdq(model: ir.Model) -> bool:
    return any(n.op_type in _QDQ_OPS and n.domain in ("", "ai.onnx") for n in model.graph)


def read_qdq(model: ir.Model) -> QuantizedGraph:
    """A QDQ-free copy of `model` and the int8 facts its QDQ nodes carried."""
    model = clone(model)
    graph = model.graph
    constants: dict[ir.Value, QuantizedConstant] = {}
    activations: dict[ir.Value, ActivationParams] = {}
    for node in list(graph):
        if node.op_type == "DequantizeLinear" and const_array(node.inputs[0]) is not None:
            _fold_constant(graph, node, constants)
    for node in list(graph):
        if node.op_type == "QuantizeLinear":
            _split_requantization(graph, node)
    for node in list(graph):
        if node.op_type == "QuantizeLinear":
            _drop_activation_pair(graph, node, activations)
    leftover = [n for n in graph if n.op_type in _QDQ_OPS]
    if leftover:
        n = leftover[0]
        raise QDQFormError(
            f"{n.op_type} '{node_label(n)}' is not part of a QuantizeLinear -> DequantizeLinear pair on an "
            "activation nor a DequantizeLinear of a constant; the TFLite lowering reads the QDQ form that "
            "edgec's quantize pass writes"
        )
    return QuantizedGraph(model, activations, constants, _inherited_params(graph, activations))


def _dq_params(node: ir.Node, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(scale, zero point, axis or None) of a Q/DQ node."""
    if node.attributes.get_int("block_size", 0):
        raise QDQFormError(f"{node.op_type} '{node_label(node)}' is blockwise; TFLite quantizes per tensor or per axis")
    scale = const_array(node.inputs[1])
    zp_value = node.inputs[2] if len(node.inputs) > 2 else None
    zp = const_array(zp_value)
    if scale is None or (zp_value is not None and zp is None):
        raise QDQFormError(f"{node.op_type} '{node_label(node)}' has a computed scale or zero point")
    scale = np.asarray(scale, np.float32)
    zp = np.zeros(scale.shape, np.int32) if zp is None else _as_int(zp)
    if scale.size == 1:
        return scale.reshape(()), zp.reshape(()), None
    axis = node.attributes.get_int("axis", 1) % max(len(shape), 1)
    return scale, zp, axis


def _as_int(array: np.ndarray) -> np.ndarray:
    """int4 / uint8 / int8 / int32 integers as plain numpy ints (ml_dtypes int4 included)."""
    return np.asarray(array).astype(np.int32)


def _fold_constant(graph: ir.Graph, dq: ir.Node, constants: dict) -> None:
    source = dq.inputs[0]
    raw = const_array(source)
    dtype = source.dtype
    scale, zp, axis = _dq_params(dq, raw.shape)
    values = _as_int(raw)
    if dtype == ir.DataType.UINT8:  # the same real values on the int8 grid
        values, zp = values - 128, zp - 128
    bits = {ir.DataType.INT4: 4, ir.DataType.INT8: 8, ir.DataType.UINT8: 8, ir.DataType.INT16: 16,
            ir.DataType.INT32: 32}.get(dtype)
    if bits is None:
        raise QDQFormError(f"DequantizeLinear '{node_label(dq)}' reads {dtype}; TFLite takes int4, int8, int16 or int32")
    shape = [1] * values.ndim
    if axis is not None:
        shape[axis] = -1
    real = ((values - zp.reshape(shape)).astype(np.float32) * scale.reshape(shape)).astype(np.float32)

    old = dq.outputs[0]
    name = old.name
    old.name = f"{name}/qdq"
    value = ir.Value(name=name, const_value=ir.tensor(real, name=name))
    value.shape = ir.Shape(real.shape)
    value.dtype = ir.DataType.FLOAT
    graph.register_initializer(value)
    old.replace_all_uses_with(value, replace_graph_outputs=True)
    graph.remove(dq, safe=True)
    int_dtype = {32: np.int32, 16: np.int16}.get(bits, np.int8)
    constants[value] = QuantizedConstant(values.astype(int_dtype), scale, zp.astype(int_dtype), axis, bits)


def _drop_activation_pair(graph: ir.Graph, q: ir.Node, activations: dict) -> None:
    x = q.inputs[0]
    scale, zp, axis = _dq_params(q, ())
    if axis is not None:
        raise QDQFormError(f"QuantizeLinear '{node_label(q)}' is per-axis; TFLite quantizes activations per tensor")
    out_dtype = q.outputs[0].dtype
    if out_dtype == ir.DataType.UINT8:
        zp = zp - 128
    elif out_dtype == ir.DataType.INT16 and int(zp) != 0:
        raise QDQFormError(f"QuantizeLinear '{node_label(q)}' writes int16 with zero point {int(zp)}; TFLite's "
                           "16x8 kernels take symmetric int16 activations (zero point 0)")
    elif out_dtype not in (ir.DataType.INT8, ir.DataType.INT16, None):
        raise QDQFormError(f"QuantizeLinear '{node_label(q)}' writes {out_dtype}; the TFLite lowering takes int8 "
                           "or int16 activations")
    params = ActivationParams(float(scale), int(zp), 16 if out_dtype == ir.DataType.INT16 else 8)
    quantized = q.outputs[0]
    dqs = [user for user, _ in quantized.uses()]
    if quantized.is_graph_output() or not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
        raise QDQFormError(f"QuantizeLinear '{node_label(q)}' feeds something other than DequantizeLinear")
    for dq in dqs:
        dq_scale, dq_zp, _ = _dq_params(dq, ())
        if out_dtype == ir.DataType.UINT8:
            dq_zp = dq_zp - 128
        if float(dq_scale) != params.scale or int(dq_zp) != params.zero_point:
            raise QDQFormError(f"DequantizeLinear '{node_label(dq)}' undoes its QuantizeLinear with other parameters")
    if activations.get(x, params) != params:
        raise QDQFormError(f"'{x.name}' is quantized twice with different parameters")
    activations[x] = params
    for dq in dqs:
        out = dq.outputs[0]
        if x.shape is None:  # QDQ tools may keep the shape only on the pair's values
            x.shape = out.shape or quantized.shape
        if out.is_graph_output():
            # The graph output keeps its name; the value computing it takes it over.
            name = out.name
            out.name = f"{name}/qdq"
            x.name = name
        out.replace_all_uses_with(x, replace_graph_outputs=True)
        graph.remove(dq, safe=True)
    graph.remove(q, safe=True)


def _split_requantization(graph: ir.Graph, q: ir.Node) -> None:
    """t -> Q -> DQ -> Q' -> DQ' (a reader of another precision, e.g. int8 after a 16x8 layer)
    becomes t -> Q -> DQ -> Identity -> Q' -> DQ': two activations, and the Identity between them
    the requantization (an Identity with differing parameters lowers as DEQUANTIZE/QUANTIZE)."""
    x = q.inputs[0]
    dq = x.producer()
    if dq is None or dq.op_type != "DequantizeLinear" or const_array(dq.inputs[0]) is not None:
        return
    identity = ir.node("Identity", [x], name=f"{node_label(q)}/requantize")
    identity.outputs[0].name = f"{x.name}/requantized"
    identity.outputs[0].dtype = x.dtype
    identity.outputs[0].shape = x.shape
    graph.insert_before(q, [identity])
    q.replace_input_with(0, identity.outputs[0])


def _inherited_params(graph: ir.Graph, activations: dict) -> dict[ir.Value, ActivationParams]:
    inherited = {}
    for node in graph:
        if node.op_type not in _FUSED_ACTIVATIONS or node.outputs[0] not in activations:
            continue
        x = node.inputs[0]
        if x in activations or x.producer() is None or const_array(x) is not None or len(x.uses()) != 1:
            continue
        inherited[x] = activations[node.outputs[0]]
    return inherited
