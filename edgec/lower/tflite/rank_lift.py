"""1-D and 3-D convolutions and pools, and 1-D MatMul operands, as the ops TFLite has.

TFLite's convolutions and pools are 2-D only. Before lowering a float graph, these nodes are
rewritten in the IR (the rewritten graph computes the same; onnxruntime runs it):

    Conv/ConvTranspose/MaxPool/AveragePool on (N, C, L)
        -> Reshape (N, C, 1, L) -> the 2-D op with a unit first spatial axis (kernel 1,
           stride 1, no padding, dilation 1 there) -> Reshape (N, C', L')
    MaxPool/AveragePool on (N, C, D, H, W), separably
        -> Reshape (N, C, D, H*W) -> pool with kernel (kd, 1) -> Reshape (N, C*D', H, W)
           -> pool with kernel (kh, kw) -> Reshape (N, C, D', H', W')
        Exact: the max over a box is a max of maxes, and ONNX's average (the sum over the
        box's cells / their count) factors into per-axis sums and per-axis counts.
    MaxPool/AveragePool with dilations (TFLite pools have none)
        -> Pad, one strided Slice per kernel tap, a Max (or Add) chain over the taps, and for
           an average a constant Mul by 1 / ONNX's per-output divisor
    ConvTranspose with group > 1, dilations, or an output past the kernel's reach
        (output_shape / output_padding / negative pads)
        -> one plain ConvTranspose per group (weights dilated with zeros) -> Concat -> Slice
           and Pad to ONNX's output window -> Add the bias (the only value past the reach)
    MatMul with a 1-D operand
        -> the operand as (1, K) or (K, 1), then the Reshape that drops that axis (numpy rules).

The rewritten nodes keep the original node's name, so an error about them names the node
the user has.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir import clone, const_array, static_shape

_WINDOW_OPS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool")


def lift_ranks(model: ir.Model) -> ir.Model:
    """`model` with those nodes rewritten (a copy; `model` itself when none needs it)."""
    if not any(_rewrite_of(node) for node in model.graph):
        return model
    model = clone(model)
    graph = model.graph
    for _ in range(3):  # a rewrite's output nodes may need the next one (3-D pool -> dilated 2-D pool)
        for node in list(graph):
            rewrite = _rewrite_of(node)
            if rewrite is not None:
                rewrite(graph, node, static_shape(node.inputs[0]), static_shape(node.outputs[0]))
    return model


def _rewrite_of(node: ir.Node):
    """The rewrite `node` needs, or None."""
    if node.domain not in ("", "ai.onnx") or not node.inputs or node.inputs[0] is None or not node.outputs:
        return None
    shape, out_shape = static_shape(node.inputs[0]), static_shape(node.outputs[0])
    if shape is None or out_shape is None:
        return None
    if node.op_type in _WINDOW_OPS and len(shape) == 3 and _only_first_output_read(node):
        return _lift_1d
    if node.op_type in ("MaxPool", "AveragePool") and len(shape) == 5 and _only_first_output_read(node):
        return _separable_3d_pool
    if (node.op_type in ("MaxPool", "AveragePool") and len(shape) == 4 and _only_first_output_read(node)
            and any(d != 1 for d in _ints(node, "dilations") or ())):
        return _dilated_pool
    if node.op_type == "ConvTranspose" and len(shape) == 4 and _transposed_conv_needs_rewrite(node, shape, out_shape):
        return _transposed_conv_in_parts
    if node.op_type == "MatMul" and _has_1d_operand(node):
        return lambda graph, node, shape, out_shape: _matmul_1d(graph, node, out_shape)
    return None


def _only_first_output_read(node: ir.Node) -> bool:
    # MaxPool's Indices have no TFLite equivalent: leave such a node to be refused by name.
    return all(v is None or (not v.uses() and not v.is_graph_output()) for v in node.outputs[1:])


def _has_1d_operand(node: ir.Node) -> bool:
    shapes = [static_shape(v) if v is not None else None for v in node.inputs[:2]]
    return all(s is not None for s in shapes) and any(len(s) == 1 for s in shapes)


# --- building blocks ------------------------------------------------------------------------------


def _fresh(graph: ir.Graph, base: str) -> str:
    taken = {v.name for v in graph.inputs} | set(graph.initializers)
    taken.update(out.name for n in graph for out in n.outputs if out.name)
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def _const(graph: ir.Graph, base: str, array: np.ndarray) -> ir.Value:
    name = _fresh(graph, base)
    value = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                     const_value=ir.tensor(array, name=name))
    graph.register_initializer(value)
    return value


def _typed(value: ir.Value, shape, like: ir.Value) -> ir.Value:
    value.shape = ir.Shape(list(shape))
    value.type = like.type
    return value


def _reshape(graph: ir.Graph, before: ir.Node, x: ir.Value, shape, name: str) -> ir.Value:
    """Insert `Reshape(x, shape)` before `before`; its output (typed like `x`)."""
    target = _const(graph, f"{name}_shape", np.asarray(shape, np.int64))
    node = ir.node("Reshape", [x, target], name=name)
    graph.insert_before(before, node)
    out = _typed(node.outputs[0], shape, x)
    out.name = _fresh(graph, name)
    return out


def _replace(graph: ir.Graph, old: ir.Node, new_out: ir.Value, old_out: ir.Value) -> None:
    """`new_out` takes `old_out`'s place (readers, graph-output slot, name); `old` goes."""
    name = old_out.name
    old_out.replace_all_uses_with(new_out, replace_graph_outputs=True)
    graph.remove(old, safe=True)
    new_out.name = name


def _attrs(node: ir.Node, **overrides) -> dict:
    out = {name: a.value for name, a in node.attributes.items()}
    for name, value in overrides.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _ints(node: ir.Node, name: str):
    a = node.attributes.get(name)
    return None if a is None else list(a.value)


# --- 1-D windows ----------------------------------------------------------------------------------


def _lift_1d(graph: ir.Graph, node: ir.Node, shape, out_shape) -> None:
    x, y = node.inputs[0], node.outputs[0]
    name = node.name or y.name
    n, c, length = shape
    x4 = _reshape(graph, node, x, (n, c, 1, length), f"{name}_as_2d")
    overrides = {}
    for key, unit in (("kernel_shape", 1), ("strides", 1), ("dilations", 1), ("output_padding", 0)):
        value = _ints(node, key)
        if value is not None:
            overrides[key] = [unit, *value]
    pads = _ints(node, "pads")
    if pads is not None:
        overrides["pads"] = [0, pads[0], 0, pads[1]]
    output_shape = _ints(node, "output_shape")
    if output_shape is not None:
        overrides["output_shape"] = [1, *output_shape[-1:]]
    inputs = [x4]
    for i, v in enumerate(node.inputs[1:], start=1):
        if i == 1 and node.op_type in ("Conv", "ConvTranspose") and v is not None:
            w = const_array(v)
            w4 = (_const(graph, f"{v.name}_2d", w[:, :, None, :]) if w is not None else
                  _reshape(graph, node, v, (*static_shape(v)[:2], 1, static_shape(v)[2]), f"{name}_weight_2d"))
            inputs.append(w4)
        else:
            inputs.append(v)
    lifted = ir.node(node.op_type, inputs, attributes=_attrs(node, **overrides), name=name)
    graph.insert_before(node, lifted)
    y4 = _typed(lifted.outputs[0], (out_shape[0], out_shape[1], 1, out_shape[2]), y)
    y4.name = _fresh(graph, f"{name}_2d_out")
    y3 = _reshape(graph, node, y4, out_shape, f"{name}_as_1d")
    _replace(graph, node, y3, y)


# --- 3-D pools ------------------------------------------------------------------------------------


def _separable_3d_pool(graph: ir.Graph, node: ir.Node, shape, out_shape) -> None:
    x, y = node.inputs[0], node.outputs[0]
    name = node.name or y.name
    n, c, d, h, w = shape
    od, oh, ow = out_shape[2:]
    kernel = _ints(node, "kernel_shape")
    strides = _ints(node, "strides") or [1, 1, 1]
    dilations = _ints(node, "dilations") or [1, 1, 1]
    pads = _ints(node, "pads")

    def pool(src: ir.Value, axes: tuple[int, ...], hint: str, out: tuple[int, ...]) -> ir.Value:
        # axes: which of (D, H, W) this 2-D pool covers; the other slot is a unit window.
        two = lambda values, unit: [values[a] if a is not None else unit for a in axes]  # noqa: E731
        overrides = {"kernel_shape": two(kernel, 1), "strides": two(strides, 1), "dilations": two(dilations, 1)}
        if pads is not None:
            begin, end = two(pads[:3], 0), two(pads[3:], 0)
            overrides["pads"] = [*begin, *end]
        pooled = ir.node(node.op_type, [src], attributes=_attrs(node, **overrides), name=f"{name}_{hint}")
        graph.insert_before(node, pooled)
        value = _typed(pooled.outputs[0], out, y)
        value.name = _fresh(graph, f"{name}_{hint}")
        return value

    # Over D: (N, C, D, H*W) with kernel (kd, 1).
    flat = _reshape(graph, node, x, (n, c, d, h * w), f"{name}_depth_major")
    over_d = pool(flat, (0, None), "over_depth", (n, c, od, h * w))
    # Over H, W: (N, C*D', H, W) with kernel (kh, kw).
    planes = _reshape(graph, node, over_d, (n, c * od, h, w), f"{name}_planes")
    over_hw = pool(planes, (1, 2), "over_plane", (n, c * od, oh, ow))
    result = _reshape(graph, node, over_hw, out_shape, f"{name}_as_3d")
    _replace(graph, node, result, y)


# --- dilated 2-D pools ------------------------------------------------------------------------------

_LOWEST = float(np.finfo(np.float32).min)  # a max-pool pad value that never wins


def _dilated_pool(graph: ir.Graph, node: ir.Node, shape, out_shape) -> None:
    from edgec.lower.tflite import padding

    x, y = node.inputs[0], node.outputs[0]
    name = node.name or y.name
    in_hw, out_hw = shape[2:], out_shape[2:]
    kernel = _ints(node, "kernel_shape")
    win = padding.window(node, in_hw, kernel, out_hw)  # end pads grown to cover ceil_mode windows
    declared = padding.window(node, in_hw, kernel)  # the pads ONNX counts for count_include_pad
    is_max = node.op_type == "MaxPool"
    pads = _const(graph, f"{name}_pads", np.asarray([0, 0, win.begin[0], win.begin[1], 0, 0, *win.end], np.int64))
    fill = _const(graph, f"{name}_pad_value", np.asarray(_LOWEST if is_max else 0.0, np.float32))
    padded_shape = (*shape[:2], *(in_hw[i] + win.begin[i] + win.end[i] for i in range(2)))
    pad = ir.node("Pad", [x, pads, fill], attributes={"mode": "constant"}, name=f"{name}_pad")
    graph.insert_before(node, pad)
    src = _typed(pad.outputs[0], padded_shape, y)
    src.name = _fresh(graph, f"{name}_padded")

    taps = []
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            starts = [i * win.dilations[0], j * win.dilations[1]]
            ends = [starts[a] + (out_hw[a] - 1) * win.strides[a] + 1 for a in range(2)]
            operands = [_const(graph, f"{name}_tap_{key}", np.asarray(v, np.int64))
                        for key, v in (("starts", starts), ("ends", ends), ("axes", [2, 3]), ("steps", win.strides))]
            tap = ir.node("Slice", [src, *operands], name=f"{name}_tap_{i}_{j}")
            graph.insert_before(node, tap)
            value = _typed(tap.outputs[0], out_shape, y)
            value.name = _fresh(graph, f"{name}_tap_{i}_{j}")
            taps.append(value)
    result = taps[0]
    for k, tap in enumerate(taps[1:]):
        combine = ir.node("Max" if is_max else "Add", [result, tap], name=f"{name}_taps_{k}")
        graph.insert_before(node, combine)
        result = _typed(combine.outputs[0], out_shape, y)
        result.name = _fresh(graph, f"{name}_taps_{k}")
    if not is_max:
        divisor = _average_divisor(node, win, declared, in_hw, out_hw)
        scale = _const(graph, f"{name}_divisor", (1.0 / divisor).astype(np.float32)[None, None])
        mul = ir.node("Mul", [result, scale], name=f"{name}_mean")
        graph.insert_before(node, mul)
        result = _typed(mul.outputs[0], out_shape, y)
        result.name = _fresh(graph, f"{name}_mean")
    _replace(graph, node, result, y)


def _average_divisor(node: ir.Node, win, declared, in_hw, out_hw) -> np.ndarray:
    """ONNX's divisor per output: the window's cells inside the input, plus those in the
    declared pads when count_include_pad (never the extra cells ceil_mode adds)."""
    include = bool(node.attributes.get("count_include_pad").value) if node.attributes.get("count_include_pad") else False
    counted = []
    for a in range(2):
        cells = np.zeros(in_hw[a] + win.begin[a] + win.end[a])
        lo = win.begin[a] - (declared.begin[a] if include else 0)
        hi = win.begin[a] + in_hw[a] + (declared.end[a] if include else 0)
        cells[lo:hi] = 1
        taps = [cells[k * win.dilations[a]: k * win.dilations[a] + (out_hw[a] - 1) * win.strides[a] + 1: win.strides[a]]
                for k in range(win.kernel[a])]
        counted.append(np.sum(taps, axis=0))
    return np.outer(counted[0], counted[1])


# --- transposed convs TRANSPOSE_CONV cannot take ----------------------------------------------------


def _transposed_conv_geometry(node: ir.Node, shape, out_shape):
    """(effective kernel, strides, dilations, begin crop, full natural size) per spatial axis."""
    w = static_shape(node.inputs[1])
    in_hw, out_hw = shape[2:], out_shape[2:]
    kernel = _ints(node, "kernel_shape") or list(w[2:])
    strides = _ints(node, "strides") or [1, 1]
    dilations = _ints(node, "dilations") or [1, 1]
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    auto_pad = node.attributes["auto_pad"].value if node.attributes.get("auto_pad") is not None else "NOTSET"
    pads = _ints(node, "pads")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") or node.attributes.get("output_shape") is not None:
        out_pad = _ints(node, "output_padding") or [0, 0]
        totals = [s * (i - 1) + p + e - o for s, i, p, e, o in zip(strides, in_hw, out_pad, eff, out_hw)]
        begins = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in totals]
    elif auto_pad == "VALID" or pads is None:
        begins = [0, 0]
    else:
        begins = pads[:2]
    full = [(i - 1) * s + e for i, s, e in zip(in_hw, strides, eff)]
    return kernel, strides, dilations, begins, full


def _transposed_conv_needs_rewrite(node: ir.Node, shape, out_shape) -> bool:
    if const_array(node.inputs[1]) is None or static_shape(node.inputs[1]) is None:
        return False
    group = node.attributes["group"].value if node.attributes.get("group") is not None else 1
    _, _, dilations, begins, full = _transposed_conv_geometry(node, shape, out_shape)
    past_reach = any(b < 0 or b + o > f for b, o, f in zip(begins, out_shape[2:], full))
    return group != 1 or any(d != 1 for d in dilations) or past_reach


def _transposed_conv_in_parts(graph: ir.Graph, node: ir.Node, shape, out_shape) -> None:
    x, y = node.inputs[0], node.outputs[0]
    name = node.name or y.name
    w = const_array(node.inputs[1])  # (C, O/group, kh, kw)
    bias = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    group = node.attributes["group"].value if node.attributes.get("group") is not None else 1
    kernel, strides, dilations, begins, full = _transposed_conv_geometry(node, shape, out_shape)
    n, c = shape[:2]
    out_c, out_hw = out_shape[1], out_shape[2:]
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    dilated = np.zeros((*w.shape[:2], *eff), w.dtype)
    dilated[:, :, ::dilations[0], ::dilations[1]] = w  # a dilated kernel is the kernel with zeros between taps
    per_in, per_out = c // group, out_c // group

    def add(op, inputs, out_dims, hint, **attrs):
        new = ir.node(op, inputs, attributes=attrs, name=f"{name}_{hint}")
        graph.insert_before(node, new)
        value = _typed(new.outputs[0], out_dims, y)
        value.name = _fresh(graph, f"{name}_{hint}")
        return value

    parts = []
    for g in range(group):
        src = x
        if group > 1:
            src = add("Slice", [x, *(_const(graph, f"{name}_g{g}_{k}", np.asarray(v, np.int64)) for k, v in
                                     (("starts", [g * per_in]), ("ends", [(g + 1) * per_in]), ("axes", [1])))],
                      (n, per_in, *shape[2:]), f"group{g}_in")
        weight = _const(graph, f"{name}_g{g}_weight", dilated[g * per_in:(g + 1) * per_in])
        parts.append(add("ConvTranspose", [src, weight], (n, per_out, *full), f"group{g}", strides=strides))
    natural = parts[0] if group == 1 else add("Concat", parts, (n, out_c, *full), "groups", axis=1)

    lo = [max(b, 0) for b in begins]
    hi = [min(b + o, f) for b, o, f in zip(begins, out_hw, full)]
    result = natural
    if lo != [0, 0] or hi != list(full):
        result = add("Slice", [natural, *(_const(graph, f"{name}_crop_{k}", np.asarray(v, np.int64)) for k, v in
                                          (("starts", lo), ("ends", hi), ("axes", [2, 3])))],
                     (n, out_c, *(h - l for l, h in zip(lo, hi))), "crop")
    before = [max(-b, 0) for b in begins]
    after = [max(b + o - f, 0) for b, o, f in zip(begins, out_hw, full)]
    if any(before) or any(after):  # outputs past the kernel's reach: no tap lands there, only the bias
        pads = _const(graph, f"{name}_reach_pads", np.asarray([0, 0, *before, 0, 0, *after], np.int64))
        result = add("Pad", [result, pads], out_shape, "reach", mode="constant")
    if bias is not None:
        result = add("Add", [result, _const(graph, f"{name}_bias", bias.reshape(-1, 1, 1))], out_shape, "bias")
    _replace(graph, node, result, y)


# --- MatMul with a 1-D operand -----------------------------------------------------------------------


def _matmul_1d(graph: ir.Graph, node: ir.Node, out_shape) -> None:
    a, b = node.inputs[:2]
    y = node.outputs[0]
    name = node.name or y.name
    a_shape, b_shape = static_shape(a), static_shape(b)
    if len(a_shape) == 1:
        a = _as_2d(graph, node, a, (1, a_shape[0]), f"{name}_row")
        a_shape = (1, a_shape[0])
    if len(b_shape) == 1:
        b = _as_2d(graph, node, b, (b_shape[0], 1), f"{name}_column")
        b_shape = (b_shape[0], 1)
    batch = list(np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    matmul = ir.node("MatMul", [a, b], name=name)
    graph.insert_before(node, matmul)
    full = _typed(matmul.outputs[0], (*batch, a_shape[-2], b_shape[-1]), y)
    full.name = _fresh(graph, f"{name}_2d_out")
    _replace(graph, node, _reshape(graph, node, full, out_shape, f"{name}_squeezed"), y)


def _as_2d(graph: ir.Graph, node: ir.Node, v: ir.Value, shape, name: str) -> ir.Value:
    array = const_array(v)
    if array is not None:
        return _const(graph, name, array.reshape(shape))
    return _reshape(graph, node, v, shape, name)
