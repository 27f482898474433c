"""Small helpers around onnx_ir, the one IR every stage speaks (float, NCHW, static shapes)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

# Opset 21 is the first with int4 QuantizeLinear/DequantizeLinear; every stage speaks it.
OPSET = 21


def to_proto(model: ir.Model) -> onnx.ModelProto:
    return ir.serde.serialize_model(model)


def to_bytes(model: ir.Model) -> bytes:
    return to_proto(model).SerializeToString()


def from_proto(proto: onnx.ModelProto) -> ir.Model:
    return ir.serde.deserialize_model(proto)


def clone(model: ir.Model) -> ir.Model:
    """A deep copy: passes work in place, so callers that keep the original clone first."""
    return from_proto(to_proto(model))


def numpy_dtype(value: ir.Value) -> np.dtype:
    if value.dtype is None:
        return np.dtype(np.float32)
    return np.dtype(value.dtype.numpy())


def static_shape(value: ir.Value) -> tuple[int, ...] | None:
    """The value's shape as ints, or None when unknown or any dimension is symbolic."""
    if value.shape is None:
        return None
    dims = []
    for d in value.shape:
        if not isinstance(d, int):
            return None
        dims.append(d)
    return tuple(dims)


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The value's constant content (initializer or folded Constant), else None."""
    if value is None:
        return None
    if value.const_value is not None:
        return value.const_value.numpy()
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant" and producer.domain == "":
        attr = producer.attributes.get("value")
        if attr is not None:
            return attr.value.numpy()
    return None


def node_label(node: ir.Node) -> str:
    """The name users see for a node: its name, or its op and first output."""
    if node.name:
        return node.name
    out = node.outputs[0].name if node.outputs else "?"
    return f"{node.op_type}->{out}"


def input_specs(model: ir.Model) -> list[tuple[str, tuple, np.dtype]]:
    specs = []
    for v in model.graph.inputs:
        shape = tuple(d if isinstance(d, int) else str(d) for d in (v.shape or ()))
        specs.append((v.name, shape, numpy_dtype(v)))
    return specs


def sample_inputs(model: ir.Model, seed: int = 0, batch: int | None = None) -> list[np.ndarray]:
    """Deterministic sample inputs for a static-shaped model (normal floats, small ints)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for name, shape, dtype in input_specs(model):
        if any(not isinstance(d, int) for d in shape):
            from edgec.errors import InputShapeError

            raise InputShapeError(f"input '{name}' has dynamic shape {list(shape)}; pass --input-shape")
        if batch is not None and shape:
            shape = (batch, *shape[1:])
        if np.issubdtype(dtype, np.floating):
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype == np.bool_:
            arrays.append(rng.integers(0, 2, shape).astype(bool))
        else:
            arrays.append(rng.integers(0, 8, shape).astype(dtype))
    return arrays
