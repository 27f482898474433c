"""Give every value a shape and a dtype with ONNX shape inference.

Lowerings allocate tensors and pick kernels from static shapes; a value left without one is
reported (by name) in the pass details rather than discovered later as a lowering failure.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir

from edgec.ir import static_shape, to_proto
from edgec.passes.base import EdgecPass

_LISTED = 10  # names shown in the details; the count covers the rest


# Ops whose output has their input's shape and dtype but for which onnx 1.23 infers nothing
# (GroupNormalization is a function op without an inference rule).
_SHAPE_PRESERVING = ("GroupNormalization",)


def infer_shapes_in_place(model: ir.Model) -> tuple[bool, str | None]:
    """Run ONNX shape inference and copy the results onto `model`'s values.

    Returns (modified, error): strict mode first, so that an inconsistent graph is reported;
    when it fails, the permissive mode still fills in what it can. Outputs of the ops in
    _SHAPE_PRESERVING are filled in from their inputs, then inference runs again past them.
    """
    modified, error = _infer_once(model)
    for _ in range(8):
        if not _fill_shape_preserving(model):
            break
        modified = True
        _, error = _infer_once(model)
    return modified, error


def _fill_shape_preserving(model: ir.Model) -> bool:
    filled = False
    for node in model.graph:
        if node.op_type in _SHAPE_PRESERVING and node.domain in ("", "ai.onnx") and node.inputs and node.outputs:
            x, y = node.inputs[0], node.outputs[0]
            if x is not None and y is not None and static_shape(y) is None and static_shape(x) is not None:
                y.shape, y.type = ir.Shape(list(x.shape)), x.type
                filled = True
    return filled


# Float initializers larger than this are passed to inference as typed inputs without data:
# inference reads the values of shape-like (integer, small) tensors only, and copying a
# BERT-base's 440 MB of weights through it twice took 24 s of a 40 s compile.
_DATA_KEPT = 1024


def _proto_without_weight_data(model: ir.Model) -> onnx.ModelProto:
    """The model as a proto in which big float initializers are typed graph inputs (no data).

    They are detached from the initializer table only while serializing, so the weights are
    never copied (to_proto of a BERT-base copies 440 MB); the model is restored before return.
    """
    graph = model.graph
    big = [v for v in graph.initializers.values()
           if v.const_value is not None and v.dtype is not None and v.dtype.is_floating_point()
           and v.const_value.size > _DATA_KEPT and not v.is_graph_input()]
    for v in big:
        graph.initializers.pop(v.name)
        graph.inputs.append(v)
    try:
        return to_proto(model)
    finally:
        for v in big:
            graph.inputs.remove(v)
            graph.initializers[v.name] = v


def _infer_once(model: ir.Model) -> tuple[bool, str | None]:
    proto = _proto_without_weight_data(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
        error = None
    except Exception as e:  # onnx raises InferenceError, ValidationError or RuntimeError
        error = f"strict shape inference failed: {_first_line(e)}"
        try:
            inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
        except Exception as e2:
            return False, f"{error}; permissive shape inference failed too: {_first_line(e2)}"
    return _copy_shapes(model, ir.serde.deserialize_model(inferred)), error


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _copy_shapes(model: ir.Model, inferred: ir.Model) -> bool:
    modified = False
    for graph, inferred_graph in zip(model.graphs(), inferred.graphs()):
        found = ir.convenience.create_value_mapping(inferred_graph)
        for name, value in ir.convenience.create_value_mapping(graph).items():
            other = found.get(name)
            if other is None:
                continue
            if other.shape is not None and other.shape != value.shape and _known_dims(other) >= _known_dims(value):
                value.shape = other.shape
                modified = True
            if other.type is not None and value.type is None:
                value.type = other.type
                modified = True
    return modified


def _known_dims(value: ir.Value) -> int:
    return -1 if value.shape is None else sum(isinstance(d, int) for d in value.shape)


def values_without_static_shape(model: ir.Model) -> list[str]:
    """Names of the main graph's values with no dtype or with an unknown/symbolic dimension."""
    graph = model.graph
    values = [*graph.inputs, *(out for node in graph for out in node.outputs if out.name)]
    return [v.name for v in values if v.dtype is None or static_shape(v) is None]


class ShapeInference(EdgecPass):
    name = "shape_inference"

    def apply(self, model: ir.Model) -> bool:
        modified, error = infer_shapes_in_place(model)
        if error:
            self.note(error)
        missing = values_without_static_shape(model)
        if missing:
            shown = ", ".join(missing[:_LISTED]) + (", ..." if len(missing) > _LISTED else "")
            self.note(f"{len(missing)} values without a static shape: {shown}")
        else:
            self.note("every value has a static shape and dtype")
        return modified
