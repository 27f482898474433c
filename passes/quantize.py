"""Insert QuantizeLinear/DequantizeLinear (QDQ) so the graph computes what the int8 model computes.

The result stays a float ONNX graph that onnxruntime runs: the int8 reference every integer
artifact is checked against. Follows the TFLite int8 spec (edgec.quantization.scheme):
weights symmetric per output channel, activations asymmetric per tensor, int32 bias with
scale = input scale x weight scale.

Shape of the output graph, which the lowerings rely on:
- every quantized activation t appears as  t -> Q -> t_q (int8) -> DQ -> t'  and every former
  consumer of t reads t';
- weights and biases of integer nodes are int8 / int32 initializers behind a DQ (per-axis for
  weights);
- an activation fused into its producer (Conv/Gemm/MatMul/Add + Relu/Clip) has no QDQ between
  the two, as TFLite fuses it into the kernel;
- ops with no int8 kernel stay float between a DQ and a Q, and are listed in the details.
TFLite ties some outputs to fixed or input parameters (LOGISTIC/SOFTMAX 1/256 zp -128, TANH
1/128 zp 0; pooling, reshapes and concatenation keep their input's): those tensors share one
set of parameters here too, so every runtime computes the same integers.
"""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np
import onnx_ir as ir

from edgec.errors import PassError
from edgec.ir import const_array, node_label
from edgec.passes.base import sole_consumer
from edgec.quantization.scheme import (
    QParams,
    activation_qparams,
    dequantize,
    fixed_qparams,
    is_degenerate_range,
    quantize,
    quantize_bias,
    weight_qparams,
    zero_tensor_qparams,
)

# Ops with int8 kernels in TFLite that XNNPACK also runs.
INTEGER_OPS = {
    "Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul",
    "Relu", "Clip", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSwish", "Softmax",
    "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean",
    "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Pad", "Resize",
}
# Producers whose single Relu/Clip consumer TFLite fuses into the kernel.
FUSING_PRODUCERS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Sub", "Mul"}
# Outputs that keep the input's quantization parameters in TFLite's int8 kernels.
SAME_PARAMS_OPS = {"MaxPool", "AveragePool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze",
                   "Pad", "Slice", "Split", "Resize", "Concat"}
FIXED_OUTPUT = {"Sigmoid": (1 / 256, -128), "Softmax": (1 / 256, -128), "Tanh": (1 / 128, 0)}
# Which inputs carry data (quantized); the others are shapes, axes or clip bounds.
DATA_INPUTS = {"Clip": (0,), "Pad": (0,), "Resize": (0,), "Reshape": (0,), "Slice": (0,), "Split": (0,),
               "ReduceMean": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Conv": (0,), "ConvTranspose": (0,),
               "Gemm": (0,)}


@dataclasses.dataclass
class QuantizeOptions:
    ranges: dict[str, tuple[float, float]]  # activation name -> calibrated (lo, hi)
    weight_bits: int = 8
    node_weight_bits: dict[str, int] = dataclasses.field(default_factory=dict)  # node name -> bits
    exclude_nodes: frozenset[str] = frozenset()  # node names kept in float
    # Per-channel means of activations (calibration); when given, biases absorb the mean error
    # that rounding the weights introduces (bias correction, Nagel et al. 2019).
    channel_means: dict[str, np.ndarray] | None = None


def _clip_bounds(node: ir.Node) -> tuple[float, float]:
    lo = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
    hi = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    return (float(lo) if lo is not None else -np.inf, float(hi) if hi is not None else np.inf)


def is_fusable_activation(node: ir.Node) -> bool:
    if node.op_type == "Relu":
        return True
    if node.op_type == "Clip":
        return _clip_bounds(node) in ((0.0, 6.0), (-1.0, 1.0), (0.0, np.inf), (0.0, 1.0))
    return False


def _weight_axis(node: ir.Node) -> int | None:
    """The output-channel axis of the node's weight (input 1) in ONNX layout."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        return 0 if node.attributes.get_int("transB", 0) else 1
    if node.op_type == "MatMul":
        return 1
    return None


def _float_data_inputs(node: ir.Node) -> list[int]:
    idx = DATA_INPUTS.get(node.op_type, range(len(node.inputs)))
    return [i for i in idx if i < len(node.inputs) and node.inputs[i] is not None
            and node.inputs[i].dtype == ir.DataType.FLOAT]


def integer_nodes(graph: ir.Graph, exclude: frozenset[str]) -> tuple[set[ir.Node], dict[ir.Node, str]]:
    """Nodes that run in int8, and for the others why they stay float."""
    chosen, floats = set(), {}
    for node in graph:
        if node.op_type == "Constant":
            continue
        if node.domain not in ("", "ai.onnx") or node.op_type not in INTEGER_OPS:
            floats[node] = "no int8 kernel"
            continue
        if node.name in exclude:
            floats[node] = "excluded"
            continue
        if node.op_type in ("Conv", "ConvTranspose", "Gemm") and const_array(node.inputs[1]) is None:
            floats[node] = "weights are not constant"
            continue
        if node.op_type == "Gemm" and (node.attributes.get_float("alpha", 1.0) != 1.0
                                       or node.attributes.get_float("beta", 1.0) != 1.0
                                       or node.attributes.get_int("transA", 0)):
            floats[node] = "Gemm with alpha/beta != 1 or transA"
            continue
        if node.op_type == "ConvTranspose" and node.attributes.get_int("group", 1) != 1:
            floats[node] = "grouped ConvTranspose"
            continue
        if not all(o.dtype == ir.DataType.FLOAT for o in node.outputs):
            floats[node] = "non-float output"
            continue
        chosen.add(node)
    return chosen, floats


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def parameter_groups(graph: ir.Graph, ints: set[ir.Node],
                     tensors: list[str]) -> list[tuple[list[str], tuple[float, int] | None]]:
    """Quantized tensors that must share one set of parameters (TFLite ties pooling, reshapes
    and concatenation to their inputs), each group with its fixed (scale, zero point) if an
    op prescribes one (LOGISTIC/SOFTMAX/TANH). QAT (edgec.training.qat_plan) shares this."""
    wanted = set(tensors)
    uf = _UnionFind()
    fixed: dict[str, tuple[float, int]] = {}
    for node in graph:
        if node not in ints:
            continue
        if node.op_type in SAME_PARAMS_OPS:
            ins = [node.inputs[i].name for i in _float_data_inputs(node) if node.inputs[i].name in wanted]
            members = ins + [o.name for o in node.outputs if o.name in wanted]
            for a, b in zip(members, members[1:]):
                uf.union(a, b)
        if node.op_type in FIXED_OUTPUT:
            fixed[node.outputs[0].name] = FIXED_OUTPUT[node.op_type]
    by_root: dict[str, list[str]] = {}
    for name in tensors:
        by_root.setdefault(uf.find(name), []).append(name)
    groups = []
    for members in by_root.values():
        fixes = {fixed[m] for m in members if m in fixed}
        if len(fixes) > 1:
            raise PassError(f"tensors {members} must share parameters but have different fixed ones {fixes}")
        groups.append((members, fixes.pop() if fixes else None))
    return groups


class QuantizeQDQ(ir.passes.InPlacePass):
    """Rewrites a float graph into its QDQ int8 form, given calibrated activation ranges."""

    def __init__(self, options: QuantizeOptions):
        super().__init__()
        self.options = options
        self.details: dict = {}
        self.degenerate_tensors: list[str] = []  # zero on every calibration sample

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        ints, floats = integer_nodes(graph, self.options.exclude_nodes)
        fused = self._fused_pairs(graph, ints)
        tensors = self._quantized_tensors(graph, ints, fused)
        params = self._tensor_params(graph, ints, tensors)
        layers = []
        for node in list(graph):
            if node in ints:
                for layer in self._quantize_constants(graph, node, params):
                    out = (fused[node] if node in fused else node).outputs[0].name
                    layer["output"] = out
                    if out in params:
                        layer["output_scale"] = float(params[out].scale)
                        layer["output_zero_point"] = int(params[out].zero_point)
                    layers.append(layer)
        for name in tensors:
            self._insert_qdq(graph, name, params[name])
        graph.sort()
        self.details = {
            "integer_nodes": len(ints),
            "float_nodes": [{"node": node_label(n), "op": n.op_type, "why": why} for n, why in floats.items()],
            "quantized_tensors": len(tensors),
            "fused_activations": len(fused),
            # Zero on every calibration sample: scaled like a neighbour (see _neighbour_scale).
            "zero_range_tensors": list(self.degenerate_tensors),
            "layers": layers,
            "activations": {n: {"scale": float(params[n].scale), "zero_point": int(params[n].zero_point)}
                            for n in tensors},
        }
        return ir.passes.PassResult(model, modified=bool(tensors))

    # -- which tensors -------------------------------------------------------------------
    @staticmethod
    def _fused_pairs(graph: ir.Graph, ints: set[ir.Node]) -> dict[ir.Node, ir.Node]:
        """producer -> its Relu/Clip consumer that TFLite fuses into the producer's kernel."""
        pairs = {}
        for node in graph:
            if node not in ints or node.op_type not in FUSING_PRODUCERS:
                continue
            act = sole_consumer(node.outputs[0])
            if act is not None and act in ints and is_fusable_activation(act):
                pairs[node] = act
        return pairs

    def _quantized_tensors(self, graph: ir.Graph, ints: set[ir.Node], fused: dict) -> list[str]:
        skip = {p.outputs[0].name for p in fused}
        names = []
        for node in graph:
            if node not in ints:
                continue
            for i in _float_data_inputs(node):
                v = node.inputs[i]
                if const_array(v) is None:
                    names.append(v.name)
            names += [o.name for o in node.outputs]
        return [n for n in dict.fromkeys(names) if n not in skip]

    def _tensor_params(self, graph: ir.Graph, ints: set[ir.Node], tensors: list[str]) -> dict[str, QParams]:
        ranges = self.options.ranges
        missing = [n for n in tensors if n not in ranges]
        if missing:
            raise PassError(
                f"no calibrated range for {len(missing)} tensor(s), e.g. '{missing[0]}'; "
                "calibrate the same graph that is quantized"
            )
        params = {}
        degenerate = []
        for members, fixed in parameter_groups(graph, ints, tensors):
            if fixed is not None:
                p = fixed_qparams(*fixed)
            else:
                lo = min(ranges[m][0] for m in members)
                hi = max(ranges[m][1] for m in members)
                if is_degenerate_range(lo, hi):
                    degenerate.append(members)
                    continue
                p = activation_qparams(lo, hi)
            for m in members:
                params[m] = p
        for members in degenerate:
            p = zero_tensor_qparams(_neighbour_scale(graph, ints, members, params))
            for m in members:
                params[m] = p
        self.degenerate_tensors = [m for members in degenerate for m in members]
        return params

    # -- rewriting -------------------------------------------------------------------------
    def _insert_qdq(self, graph: ir.Graph, name: str, p: QParams) -> None:
        value = _find_value(graph, name)
        scale = _const(graph, f"{name}/scale", np.asarray(p.scale, np.float32))
        zp = _const(graph, f"{name}/zero_point", np.asarray(p.zero_point, np.int8))
        q = ir.node("QuantizeLinear", [value, scale, zp], name=f"{name}/Q", num_outputs=1)
        q.outputs[0].name = f"{name}/q"
        q.outputs[0].dtype = ir.DataType.INT8
        q.outputs[0].shape = value.shape
        dq = ir.node("DequantizeLinear", [q.outputs[0], scale, zp], name=f"{name}/DQ", num_outputs=1)
        dq.outputs[0].dtype = ir.DataType.FLOAT
        dq.outputs[0].shape = value.shape
        was_output = [i for i, o in enumerate(graph.outputs) if o is value]
        value.replace_all_uses_with(dq.outputs[0], replace_graph_outputs=True)
        q.replace_input_with(0, value)
        if was_output:
            value.name, dq.outputs[0].name = f"{name}/float", name  # graph output names never change
        else:
            dq.outputs[0].name = f"{name}/dq"
        producer = value.producer()
        if producer is not None:
            graph.insert_after(producer, [q, dq])
        else:
            first = next(iter(graph), None)
            if first is None:
                graph.extend([q, dq])
            else:
                graph.insert_before(first, [q, dq])

    def _quantize_constants(self, graph: ir.Graph, node: ir.Node, params: dict[str, QParams]) -> list[dict]:
        """Weights (per channel), bias (int32) and constant operands (per tensor) behind a DQ."""
        layers = []
        axis = _weight_axis(node)
        w = const_array(node.inputs[1]) if axis is not None and len(node.inputs) > 1 else None
        if w is not None and w.ndim >= 2:
            bits = self.options.node_weight_bits.get(node.name, self.options.weight_bits)
            if node.op_type == "MatMul" and w.ndim != 2:
                axis = w.ndim - 1
            wp = weight_qparams(w, axis, bits)
            node.replace_input_with(1, _dq_const(graph, f"{node_label(node)}/weight", quantize(w, wp), wp, bits))
            layer = {"node": node_label(node), "op": node.op_type, "weight_bits": bits,
                     "weight_scales": [float(s) for s in np.atleast_1d(wp.scale)]}
            b = const_array(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] is not None else None
            means = self.options.channel_means
            if b is not None and means is not None and node.inputs[0].name in means:
                shift = _weight_error_shift(node, w, dequantize(quantize(w, wp), wp), means[node.inputs[0].name])
                if shift is not None:
                    b = (b - shift).astype(np.float32)
                    layer["bias_correction_max"] = float(np.max(np.abs(shift)))
            if b is not None:
                x_name = node.inputs[0].name
                if x_name not in params:
                    raise PassError(f"{node.op_type} '{node_label(node)}': its input '{x_name}' is not quantized")
                qb, bscale = quantize_bias(b, float(params[x_name].scale), np.atleast_1d(wp.scale))
                bp = QParams(bscale, np.zeros_like(bscale, dtype=np.int32), np.iinfo(np.int32).min,
                             np.iinfo(np.int32).max, 0)
                node.replace_input_with(2, _dq_const(graph, f"{node_label(node)}/bias", qb, bp, 32))
            layers.append(layer)
            return layers
        for i in _float_data_inputs(node):
            c = const_array(node.inputs[i])
            if c is None:
                continue
            cp = activation_qparams(float(c.min()), float(c.max()))
            node.replace_input_with(i, _dq_const(graph, f"{node_label(node)}/const{i}", quantize(c, cp), cp, 8))
        return layers


def _weight_error_shift(node: ir.Node, w: np.ndarray, wq: np.ndarray, mean_x: np.ndarray) -> np.ndarray | None:
    """E[(Wq - W) x] per output channel, from the input's per-channel mean.

    Exact for Gemm/MatMul and 1x1 convs; for kxk convs it ignores that zero padding lowers the
    mean near the borders, which is the usual approximation.
    """
    err = (wq - w).astype(np.float64)
    mean_x = mean_x.astype(np.float64)
    if node.op_type == "Conv":
        groups = node.attributes.get_int("group", 1)
        out_c, in_per_group = err.shape[:2]
        if mean_x.shape[0] != in_per_group * groups:
            return None
        per_in = err.reshape(out_c, in_per_group, -1).sum(axis=2)  # [O, I/g]
        mx = mean_x.reshape(groups, in_per_group)
        group_of = np.arange(out_c) // (out_c // groups)
        return np.einsum("oi,oi->o", per_in, mx[group_of]).astype(np.float32)
    if node.op_type == "Gemm":
        if node.attributes.get_int("transB", 0):
            return (err @ mean_x).astype(np.float32) if err.shape[1] == mean_x.shape[0] else None
        return (mean_x @ err).astype(np.float32) if err.shape[0] == mean_x.shape[0] else None
    if node.op_type == "MatMul" and err.ndim == 2 and err.shape[0] == mean_x.shape[0]:
        return (mean_x @ err).astype(np.float32)
    return None


def _neighbour_scale(graph: ir.Graph, ints: set[ir.Node], members: list[str],
                     params: dict[str, QParams]) -> float | None:
    """A scale for a tensor that is zero on every calibration sample, taken from the tensors
    the kernels that write and read it combine it with.

    Any scale holds an all-zero tensor exactly, but XNNPACK bounds the ratios between an op's
    scales (conv: input x filter / output < 256; add: each input / output >= 2^-10), so a
    scale of 1e-9 beside activations of 1e-2 makes the file unloadable. Borrowing the
    producer's input scale (else a consumer's other operand or output) keeps every ratio
    near 1 (timm zero-initialises the last BatchNorm of residual blocks: the folded conv's
    output is such a tensor, added to the block's input)."""
    names = set(members)
    producers, consumers = [], []
    for node in graph:
        if node not in ints:
            continue
        if any(o.name in names for o in node.outputs):
            producers.append(node)
        if any(v is not None and v.name in names for v in node.inputs):
            consumers.append(node)
    candidates = [v.name for n in producers for v in n.inputs if v is not None]
    candidates += [v.name for n in consumers for v in n.inputs if v is not None]
    candidates += [o.name for n in consumers for o in n.outputs]
    for name in candidates:
        if name not in names and name in params:
            return float(params[name].scale)
    return None


def _find_value(graph: ir.Graph, name: str) -> ir.Value:
    for v in graph.inputs:
        if v.name == name:
            return v
    for node in graph:
        for o in node.outputs:
            if o.name == name:
                return o
    raise PassError(f"tensor '{name}' not found in the graph")


def _const(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    value = ir.Value(name=name, const_value=ir.tensor(array, name=name))
    value.shape = ir.Shape(array.shape)
    value.dtype = value.const_value.dtype
    graph.register_initializer(value)
    return value


def _dq_const(graph: ir.Graph, name: str, q: np.ndarray, p: QParams, bits: int) -> ir.Value:
    """An integer initializer behind a DequantizeLinear (per-axis when p has an axis)."""
    if bits == 4:
        # An INT4 initializer (opset 21): lowerings store the weights at 4 bits (TFLite packs two per byte).
        q = q.astype(ml_dtypes.int4)
    qv = _const(graph, f"{name}/quantized", q)
    scale = _const(graph, f"{name}/scale", np.asarray(p.scale, np.float32))
    zp = _const(graph, f"{name}/zero_point", np.asarray(p.zero_point, q.dtype))
    attrs = {"axis": int(p.axis)} if p.axis is not None and np.ndim(p.scale) > 0 else {}
    dq = ir.node("DequantizeLinear", [qv, scale, zp], attributes=attrs, name=f"{name}/DQ")
    dq.outputs[0].name = f"{name}/dq"
    dq.outputs[0].dtype = ir.DataType.FLOAT
    dq.outputs[0].shape = ir.Shape(q.shape)
    graph.append(dq)
    return dq.outputs[0]
