"""Rewrites before Relax's ONNX import, where TVM 0.27's converters compute something else.

Found by onnx's backend node tests (benchmarks/onnx_node_conformance.py): each rewrite
gives the graph ONNX's semantics in ops the frontend converts correctly, and a node no
rewrite can save is refused by name instead of compiling to a wrong number.

    Resize        TVM's resize2d scales by out/in (ONNX: by the given scale), has no
                  antialias, half_pixel_symmetric, `axes` or keep_aspect_ratio_policy
                  -> those become two MatMuls with ONNX's interpolation matrices
                  (edgec/lower/resize_matrices.py)
    ConvTranspose output_shape is ignored -> the equivalent pads / output_padding
    Reshape       allowzero=1 makes the shape symbolic -> dropped when no 0 is in the shape
    Gather        run-time indices go to take(mode="fast"): a negative or out-of-range id
                  (a token id past the vocabulary) reads outside the table -> the indices
                  are wrapped first, Mod(ids, axis length), as the TFLite lowering does
    LayerNormalization whose mean / inv-std outputs are read (TVM returns them with the
                  wrong shape) -> ReduceMean, Sub, Mul, Sqrt, Reciprocal
    refused       zero-size tensors; Dropout and BatchNormalization in training mode (TVM
                  ignores training_mode); casts to 4-bit and float8 types; IsInf with one
                  sign switched off (ignored)
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.errors import UnsupportedOpsError
from edgec.ir import clone, const_array, node_label, static_shape
from edgec.lower.resize_matrices import resize_matrices

_STANDARD = ("", "ai.onnx")
# TVM's resize2d supports these coordinate modes as ONNX defines them (at an integer output length).
_TVM_RESIZE_COORDS = ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel")


def fix_for_relax(model: ir.Model, target_name: str) -> ir.Model:
    """`model` with the rewrites applied (a copy, or `model` when none applies); raises
    UnsupportedOpsError naming every node that stays wrong in TVM."""
    problems = [(v.name, "graph output", f"is {v.dtype.name}; Apache TVM artifacts have no 4-bit or float8 outputs")
                for v in model.graph.outputs if v.dtype is not None and _narrow(v.dtype)]
    problems += [(node_label(n), n.op_type, why) for n in model.graph
                 if n.domain in _STANDARD and (why := _refusal(n)) is not None]
    if problems:
        raise UnsupportedOpsError(target_name, "tvm", problems)
    if not any(_needs_rewrite(n) for n in model.graph):
        return model
    model = clone(model)
    for node in list(model.graph):
        if not _needs_rewrite(node):
            continue
        if node.op_type == "Resize":
            _resize_as_matmuls(model.graph, node)
        elif node.op_type == "ConvTranspose":
            _output_shape_as_pads(node)
        elif node.op_type == "LayerNormalization":
            _layer_norm_with_statistics(model.graph, node)
        elif node.op_type == "Reshape":
            node.attributes["allowzero"] = ir.AttrInt64("allowzero", 0)
        elif node.op_type == "Gather":
            _wrap_gather_indices(model.graph, node)
    return model


def _narrow(dtype: ir.DataType) -> bool:
    return dtype.bitwidth < 8 or "FLOAT8" in dtype.name


def _int_attr(node: ir.Node, name: str, default: int) -> int:
    return node.attributes[name].value if node.attributes.get(name) is not None else default


def _read(value: ir.Value | None) -> bool:
    return value is not None and (bool(value.uses()) or value.is_graph_output())


def _refusal(node: ir.Node) -> str | None:
    for value in (*node.inputs, *node.outputs):
        shape = static_shape(value) if value is not None else None
        if value is None or const_array(value) is not None:  # an empty constant (e.g. axes=[]) is fine
            continue
        if shape is not None and 0 in shape and (value in node.inputs or _read(value)):
            return f"value '{value.name}' is a zero-size tensor {list(shape)}; Apache TVM's Relax build cannot take it"
    if node.op_type == "Dropout" and len(node.inputs) > 2 and node.inputs[2] is not None:
        training = const_array(node.inputs[2])
        if training is None or bool(training):
            return "Dropout in training mode (random masks); export the model in eval mode"
    if node.op_type == "BatchNormalization" and _int_attr(node, "training_mode", 0):
        return "BatchNormalization in training mode (batch statistics); export the model in eval mode"
    if node.op_type in ("Cast", "CastLike"):
        to = node.outputs[0].dtype
        if to is not None and _narrow(to):
            return f"a cast to {to.name}: Apache TVM's Relax build has no {to.name} conversion"
    if node.op_type == "IsInf" and not (_int_attr(node, "detect_negative", 1) and _int_attr(node, "detect_positive", 1)):
        return "IsInf with detect_negative/detect_positive off: Apache TVM's converter ignores them"
    if (node.op_type == "ConvTranspose" and node.attributes.get("output_shape") is not None
            and static_shape(node.inputs[0]) is not None and _pads_from_output_shape(node) is None):
        return "output_shape starts before the first input position (a negative pad); give pads instead"
    if node.op_type == "Resize" and _tvm_resize_differs(node):
        found = resize_matrices(node)
        if isinstance(found, str):
            return found
    return None


def _needs_rewrite(node: ir.Node) -> bool:
    if node.domain not in _STANDARD:
        return False
    if node.op_type == "Resize":
        return _tvm_resize_differs(node)
    if node.op_type == "LayerNormalization":
        return any(_read(v) for v in node.outputs[1:]) and static_shape(node.inputs[0]) is not None
    if node.op_type == "ConvTranspose":
        return node.attributes.get("output_shape") is not None and static_shape(node.inputs[0]) is not None
    if node.op_type == "Gather":
        data, indices = node.inputs[0], node.inputs[1]
        return (const_array(indices) is None and indices.dtype in (ir.DataType.INT64, ir.DataType.INT32)
                and static_shape(data) is not None)
    if node.op_type == "Reshape" and node.attributes.get("allowzero") is not None:
        shape = const_array(node.inputs[1])
        return bool(node.attributes["allowzero"].value) and shape is not None and 0 not in shape.tolist()
    return False


def _tvm_resize_differs(node: ir.Node) -> bool:
    """True when TVM's resize2d would not compute what ONNX does for this node."""
    found = resize_matrices(node)
    if isinstance(found, str):
        return found.startswith("align_corners with scale")  # refused: onnxruntime and ONNX disagree
    interp = found.interpolation
    in_shape, out_shape = static_shape(node.inputs[0]), static_shape(node.outputs[0])
    # TVM's nearest rounding matches ONNX only where whole pixels map to whole pixels.
    uneven = any(o % i and i % o for i, o in zip(in_shape[2:], out_shape[2:]))
    return (interp.mode == "nearest" and uneven) or (interp.antialias or interp.coord not in _TVM_RESIZE_COORDS or found.fractional
            or node.attributes.get("axes") is not None
            or node.attributes.get("keep_aspect_ratio_policy") is not None)


def _const(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    value = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                     const_value=ir.tensor(array, name=name))
    graph.register_initializer(value)
    return value


def _resize_as_matmuls(graph: ir.Graph, node: ir.Node) -> None:
    """Y = M_h (X M_w^T) [+ E]: MatMul broadcasts the constant (oh, H) over N and C."""
    found = resize_matrices(node)
    m_h, m_w = found.matrices
    x, y = node.inputs[0], node.outputs[0]
    n, c, h, _ = static_shape(x)
    oh, ow = m_h.shape[0], m_w.shape[0]
    base = node.name or y.name
    along_w = ir.node("MatMul", [x, _const(graph, f"{base}_interp_w", m_w.T.astype(np.float32))],
                      name=f"{base}_along_w")
    along_w.outputs[0].name, along_w.outputs[0].shape, along_w.outputs[0].type = (
        f"{base}_along_w", ir.Shape([n, c, h, ow]), x.type)
    along_h = ir.node("MatMul", [_const(graph, f"{base}_interp_h", m_h.astype(np.float32)), along_w.outputs[0]],
                      name=f"{base}_along_h")
    result = along_h.outputs[0]
    result.shape, result.type = ir.Shape([n, c, oh, ow]), x.type
    added = [along_w, along_h]
    if found.extrapolated is not None:
        add = ir.node("Add", [result, _const(graph, f"{base}_extrapolated", found.extrapolated[None, None])],
                      name=f"{base}_extrapolate")
        result.name = f"{base}_interpolated"
        result = add.outputs[0]
        result.shape, result.type = ir.Shape([n, c, oh, ow]), x.type
        added.append(add)
    graph.insert_before(node, added)
    name = y.name
    y.replace_all_uses_with(result, replace_graph_outputs=True)
    graph.remove(node, safe=True)
    result.name = name


def _pads_from_output_shape(node: ir.Node) -> tuple[list[int], list[int], list[int]] | None:
    """(pads begin, pads end, output_padding) equivalent to the node's output_shape, or None
    when the output would start before the first input position (a negative begin pad).

    ONNX: total = stride * (in - 1) + output_padding + (k - 1) * dilation + 1 - output_shape,
    split begin/end by auto_pad; a negative end (output past the kernel's reach) is output_padding.
    """
    in_shape = static_shape(node.inputs[0])[2:]
    w_shape = static_shape(node.inputs[1])
    spatial = len(in_shape)
    out = list(node.attributes["output_shape"].value)[-spatial:]

    def ints(key, default):
        return list(node.attributes[key].value) if node.attributes.get(key) is not None else default

    kernel = ints("kernel_shape", list(w_shape[2:]))
    strides, dilations = ints("strides", [1] * spatial), ints("dilations", [1] * spatial)
    out_pad = ints("output_padding", [0] * spatial)
    auto_pad = node.attributes["auto_pad"].value if node.attributes.get("auto_pad") is not None else "NOTSET"
    begins, ends, extra = [], [], []
    for i in range(spatial):
        total = strides[i] * (in_shape[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1 - out[i]
        begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        end = total - begin
        if begin < 0:
            return None
        begins.append(begin)
        ends.append(max(0, end))
        extra.append(out_pad[i] + max(0, -end))
    return begins, ends, extra


def _output_shape_as_pads(node: ir.Node) -> None:
    begins, ends, extra = _pads_from_output_shape(node)
    for key in ("output_shape", "auto_pad"):
        node.attributes.pop(key, None)
    node.attributes["pads"] = ir.AttrInt64s("pads", begins + ends)
    node.attributes["output_padding"] = ir.AttrInt64s("output_padding", extra)


def _wrap_gather_indices(graph: ir.Graph, node: ir.Node) -> None:
    """ids -> Mod(ids, n) (integer Mod takes the divisor's sign): in-range ids, negative ones
    included, keep their meaning; an out-of-range id reads a row of the table, never past it."""
    data, indices = node.inputs[0], node.inputs[1]
    axis = _int_attr(node, "axis", 0) % len(static_shape(data))
    base = node.name or node.outputs[0].name
    length = _const(graph, f"{base}_axis_length",
                    np.asarray(static_shape(data)[axis], dtype=indices.dtype.numpy()))
    wrap = ir.node("Mod", [indices, length], attributes={"fmod": 0}, name=f"{base}_wrap_indices")
    wrapped = wrap.outputs[0]
    wrapped.name, wrapped.shape, wrapped.type = f"{base}_wrapped_indices", indices.shape, indices.type
    graph.insert_before(node, [wrap])
    node.replace_input_with(1, wrapped)


def _layer_norm_with_statistics(graph: ir.Graph, node: ir.Node) -> None:
    """mean = E[x], d = x - mean, inv_std = 1 / sqrt(E[d^2] + eps), y = d * inv_std * scale + bias,
    with every statistic over the axes from `axis` on (kept as size-1 dims, as ONNX returns them)."""
    x = node.inputs[0]
    shape = static_shape(x)
    rank = len(shape)
    axis = (node.attributes["axis"].value if node.attributes.get("axis") is not None else -1) % rank
    eps = node.attributes["epsilon"].value if node.attributes.get("epsilon") is not None else 1e-5
    base = node.name or node.outputs[0].name
    stats_shape = [d if i < axis else 1 for i, d in enumerate(shape)]
    axes = _const(graph, f"{base}_axes", np.arange(axis, rank, dtype=np.int64))
    added = []

    def emit(op, inputs, out_shape, hint, **attrs):
        n = ir.node(op, inputs, attributes=attrs, name=f"{base}_{hint}")
        value = n.outputs[0]
        value.name, value.shape, value.type = f"{base}_{hint}", ir.Shape(list(out_shape)), x.type
        added.append(n)
        return value

    mean = emit("ReduceMean", [x, axes], stats_shape, "mean", keepdims=1)
    centered = emit("Sub", [x, mean], shape, "centered")
    squared = emit("Mul", [centered, centered], shape, "squared")
    var = emit("ReduceMean", [squared, axes], stats_shape, "variance", keepdims=1)
    var_eps = emit("Add", [var, _const(graph, f"{base}_epsilon", np.asarray(eps, np.float32))], stats_shape, "var_eps")
    inv_std = emit("Reciprocal", [emit("Sqrt", [var_eps], stats_shape, "std")], stats_shape, "inv_std")
    y = emit("Mul", [centered, inv_std], shape, "normalized")
    scale = node.inputs[1] if len(node.inputs) > 1 else None
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if scale is not None:
        y = emit("Mul", [y, scale], shape, "scaled")
    if bias is not None:
        y = emit("Add", [y, bias], shape, "shifted")
    graph.insert_before(node, added)
    replacements = [(node.outputs[0], y), *zip(node.outputs[1:3], (mean, inv_std))]
    names = [(old.name, new) for old, new in replacements if old is not None]
    for old, new in replacements:
        if old is not None:
            old.replace_all_uses_with(new, replace_graph_outputs=True)
    graph.remove(node, safe=True)
    for name, new in names:
        new.name = name
