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
- ops with no int8 kernel stay float between a DQ and a Q, and are listed in the details, as
  are ops kept float on purpose: one whose output is only a Div's divisor, and one that reads
  or writes a value standing for infinity (an attention mask).
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
    INT16_MAX,
    QParams,
    activation_qparams,
    dequantize,
    fixed_qparams,
    is_degenerate_range,
    int16_activation_qparams,
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
# Ops with 16x8 kernels (int16 activations, int8 weights) in TFLite's builtin kernels, which
# the TFLite lowering writes; their fixed outputs in that mode.
INT16_OPS = {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Softmax", "Sigmoid", "Tanh", "Relu", "ReduceMean",
             "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "MaxPool", "AveragePool"}
FIXED_OUTPUT_INT16 = {"Sigmoid": (1 / 32768, 0), "Softmax": (1 / 32768, 0), "Tanh": (1 / 32768, 0)}
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
    # Node names computing with int16 activations (inputs and outputs; weights stay int8): a
    # tensor takes its producer's precision, and a reader of the other one gets a second QDQ
    # pair (TFLite: a requantization) in front of it.
    int16_nodes: frozenset[str] = frozenset()
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
        if _only_a_divisor(node):
            floats[node] = "its output is only a Div's divisor (int8 rounds a small divisor to exactly 0)"
            continue
        chosen.add(node)
    return chosen, floats


def _only_a_divisor(node: ir.Node) -> bool:
    """Whether every reader of `node`'s output is a Div dividing by it. Div has no int8 kernel and
    runs in float after a dequantize, so an int8 divisor would be rounded first: the `x + eps`
    that keeps a divisor away from zero (EfficientViT's linear attention) quantized to the
    tensor's int8 grid puts every divisor below half a step at exactly 0, and the Div then
    yields inf/NaN, which each runtime quantizes differently. Kept float, `eps` still guards it."""
    readers = [(user, index) for out in node.outputs for user, index in out.uses()]
    return bool(readers) and all(user.op_type == "Div" and index == 1 for user, index in readers)


# A value beyond this stands for -inf/+inf (an attention mask's torch.finfo(float32).min): an
# int8 grid over it has a step of ~1e36, which zeroes every other value of the tensor and makes
# TFLite's kernels abort computing their requantization multipliers (hf BERT's mask ADD).
EXTREME_MAGNITUDE = 2.0 ** 100


def _extreme_range_nodes(ints: set[ir.Node], ranges: dict[str, tuple[float, float]]) -> dict[ir.Node, str]:
    """Integer nodes that read or write a value whose calibrated range (or constant content)
    reaches EXTREME_MAGNITUDE, each with the reason they stay float."""
    out = {}
    for node in ints:
        for v in [node.inputs[i] for i in _float_data_inputs(node)] + list(node.outputs):
            if v is None:
                continue
            const = const_array(v)
            if const is not None:
                big = const.size > 0 and v.dtype == ir.DataType.FLOAT and float(np.max(np.abs(const))) >= EXTREME_MAGNITUDE
            else:
                lo, hi = ranges.get(v.name, (0.0, 0.0))
                big = max(abs(lo), abs(hi)) >= EXTREME_MAGNITUDE
            if big:
                out[node] = (f"'{v.name}' reaches {EXTREME_MAGNITUDE:.0e} in magnitude (a value standing for "
                             "infinity, e.g. an attention mask): int8 cannot represent it with the rest")
                break
    return out


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
        for node, why in _extreme_range_nodes(ints, self.options.ranges).items():
            ints.discard(node)
            floats[node] = why
        self._check_int16_nodes(ints)
        fused = self._fused_pairs(graph, ints, self.options.int16_nodes)
        tensors = self._quantized_tensors(graph, ints, fused)
        self._tensor_bits = self._precisions(graph, ints, tensors)
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
        requantized = 0
        for name in tensors:
            dq = self._insert_qdq(graph, name, params[name])
            requantized += self._requantize_for_readers(graph, ints, name, dq)
        graph.sort()
        self.details = {
            "integer_nodes": len(ints),
            "float_nodes": [{"node": node_label(n), "op": n.op_type, "why": why} for n, why in floats.items()],
            "quantized_tensors": len(tensors),
            "fused_activations": len(fused),
            # Zero on every calibration sample: scaled like a neighbour (see _neighbour_scale).
            "zero_range_tensors": list(self.degenerate_tensors),
            "layers": layers,
            "activations": {n: {"scale": float(params[n].scale), "zero_point": int(params[n].zero_point),
                                **({"bits": 16} if self._tensor_bits[n] == 16 else {})}
                            for n in tensors},
        }
        if self.options.int16_nodes:
            self.details["int16_nodes"] = sorted(n.name for n in ints if n.name in self.options.int16_nodes)
            self.details["requantized_reads"] = requantized
        return ir.passes.PassResult(model, modified=bool(tensors))

    # -- which tensors -------------------------------------------------------------------
    @staticmethod
    def _fused_pairs(graph: ir.Graph, ints: set[ir.Node], int16_nodes: frozenset[str] = frozenset()
                     ) -> dict[ir.Node, ir.Node]:
        """producer -> its Relu/Clip consumer that TFLite fuses into the producer's kernel
        (both of one precision)."""
        pairs = {}
        for node in graph:
            if node not in ints or node.op_type not in FUSING_PRODUCERS:
                continue
            act = sole_consumer(node.outputs[0])
            if act is not None and act in ints and is_fusable_activation(act) and \
                    (act.name in int16_nodes) == (node.name in int16_nodes):
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
        self._grids: dict[str, tuple[float, float, str | None]] = {}
        fixed_op = {n.outputs[0].name: n.op_type for n in graph if n in ints and n.op_type in FIXED_OUTPUT}
        degenerate = []
        self._zero_scales: dict[str, float | None] = {}
        for members, fixed in parameter_groups(graph, ints, tensors):
            lo = min(ranges[m][0] for m in members)
            hi = max(ranges[m][1] for m in members)
            op = next((fixed_op[m] for m in members if m in fixed_op), None) if fixed is not None else None
            for m in members:
                self._grids[m] = (lo, hi, op)
            if op is None and is_degenerate_range(lo, hi):
                degenerate.append(members)
                continue
            for m in members:
                params[m] = self._params_at(m, self._tensor_bits[m])
        for members in degenerate:
            scale = _neighbour_scale(graph, ints, members, params)
            for m in members:
                self._zero_scales[m] = scale
                params[m] = self._params_at(m, self._tensor_bits[m])
        self.degenerate_tensors = [m for members in degenerate for m in members]
        return params

    # -- 16-bit activations ----------------------------------------------------------------
    def _node_bits(self, node: ir.Node) -> int:
        return 16 if node.name in self.options.int16_nodes else 8

    def _check_int16_nodes(self, ints: set[ir.Node]) -> None:
        for node in ints:
            if node.name in self.options.int16_nodes and node.op_type not in INT16_OPS:
                raise PassError(f"{node.op_type} '{node_label(node)}' has no 16x8 kernel in TFLite; "
                                "keep it int8 or float")

    def _precisions(self, graph: ir.Graph, ints: set[ir.Node], tensors: list[str]) -> dict[str, int]:
        """A tensor's activation bits: its integer producer's; for graph inputs and float
        producers, 16 when every integer reader is 16-bit."""
        bits = {}
        for name in tensors:
            value = _find_value(graph, name)
            producer = value.producer()
            if producer is not None and producer in ints:
                bits[name] = self._node_bits(producer)
            else:
                readers = [c for c in value.consumers() if c in ints]
                bits[name] = 16 if readers and all(self._node_bits(c) == 16 for c in readers) else 8
        return bits

    def _params_at(self, name: str, bits: int) -> QParams:
        """The parameters of tensor `name` (its group's range, or its op's fixed ones) at `bits`."""
        lo, hi, fixed_op = self._grids[name]
        if fixed_op is not None:
            table = FIXED_OUTPUT_INT16 if bits == 16 else FIXED_OUTPUT
            return fixed_qparams(*table[fixed_op], bits=bits)
        if name in self._zero_scales:  # zero on every sample: a neighbour's scale (see _neighbour_scale)
            p = zero_tensor_qparams(self._zero_scales[name])
            return int16_activation_qparams(0.0, float(p.scale) * INT16_MAX) if bits == 16 else p
        return int16_activation_qparams(lo, hi) if bits == 16 else activation_qparams(lo, hi)

    def _read_params(self, node: ir.Node, name: str, params: dict[str, QParams]) -> QParams:
        """The parameters `node` reads tensor `name` with (requantized to its own precision)."""
        if name in self._grids and self._tensor_bits.get(name) != self._node_bits(node):
            return self._params_at(name, self._node_bits(node))
        return params[name]

    def _requantize_for_readers(self, graph: ir.Graph, ints: set[ir.Node], name: str, dq: ir.Value) -> int:
        """Integer readers of the other precision read `name` through a second QDQ pair."""
        own = self._tensor_bits[name]
        readers = [c for c in dq.consumers() if c in ints and self._node_bits(c) != own]
        if not readers:
            return 0
        p = self._params_at(name, 16 if own == 8 else 8)
        second = self._qdq_pair(graph, dq, f"{name}/int{16 if own == 8 else 8}", p)
        for reader in readers:
            for i, v in enumerate(reader.inputs):
                if v is dq:
                    reader.replace_input_with(i, second)
        return len(readers)

    # -- rewriting -------------------------------------------------------------------------
    def _qdq_pair(self, graph: ir.Graph, value: ir.Value, name: str, p: QParams) -> ir.Value:
        """value -> Q -> DQ after value's producer; the DQ output (no uses rewired)."""
        q, dq = self._pair_nodes(graph, value, name, p)
        q.outputs[0].name, dq.outputs[0].name = f"{name}/q", f"{name}/dq"
        graph.insert_after(value.producer(), [q, dq])
        return dq.outputs[0]

    @staticmethod
    def _pair_nodes(graph: ir.Graph, value: ir.Value, name: str, p: QParams) -> tuple[ir.Node, ir.Node]:
        dtype, np_dtype = (ir.DataType.INT16, np.int16) if p.qmax > 127 else (ir.DataType.INT8, np.int8)
        scale = _const(graph, f"{name}/scale", np.asarray(p.scale, np.float32))
        zp = _const(graph, f"{name}/zero_point", np.asarray(p.zero_point, np_dtype))
        q = ir.node("QuantizeLinear", [value, scale, zp], name=f"{name}/Q", num_outputs=1)
        q.outputs[0].dtype = dtype
        q.outputs[0].shape = value.shape
        dq = ir.node("DequantizeLinear", [q.outputs[0], scale, zp], name=f"{name}/DQ", num_outputs=1)
        dq.outputs[0].dtype = ir.DataType.FLOAT
        dq.outputs[0].shape = value.shape
        return q, dq

    def _insert_qdq(self, graph: ir.Graph, name: str, p: QParams) -> ir.Value:
        value = _find_value(graph, name)
        q, dq = self._pair_nodes(graph, value, name, p)
        q.outputs[0].name = f"{name}/q"
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
        return dq.outputs[0]

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
                x_scale = float(self._read_params(node, x_name, params).scale)
                qb, bscale = quantize_bias(b, x_scale, np.atleast_1d(wp.scale))
                if self._node_bits(node) == 16:
                    qb, bscale = _bias_within_int32(b, qb, bscale)
                bp = QParams(bscale, np.zeros_like(bscale, dtype=np.int32), np.iinfo(np.int32).min,
                             np.iinfo(np.int32).max, 0)
                node.replace_input_with(2, _dq_const(graph, f"{node_label(node)}/bias", qb, bp, 32))
            layers.append(layer)
            return layers
        for i in _float_data_inputs(node):
            c = const_array(node.inputs[i])
            if c is None:
                continue
            if self._node_bits(node) == 16:  # 16x8 kernels take int16 operands with zero point 0
                cp = int16_activation_qparams(float(c.min()), float(c.max()))
                bits = 16
            else:
                cp, bits = activation_qparams(float(c.min()), float(c.max())), 8
            node.replace_input_with(i, _dq_const(graph, f"{node_label(node)}/const{i}", quantize(c, cp), cp, bits))
        return layers


def _bias_within_int32(b: np.ndarray, qb: np.ndarray, bscale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 16x8 layer's bias on a scale ~256x finer than int8's can overflow int32, the widest
    integer DequantizeLinear reads (TFLite stores it int64). Such channels keep a power-of-two
    multiple of the scale: the lowering rounds them back onto the kernel's scale in int64, off by
    at most half that multiple of the accumulator's step, far below an output step."""
    limit = float(np.iinfo(np.int32).max)
    need = np.abs(b.astype(np.float64)) / bscale.astype(np.float64)
    if not np.any(need >= limit):
        return qb, bscale
    factor = np.where(need >= limit, 2.0 ** np.ceil(np.log2(np.maximum(need, 1.0) / limit) + 1), 1.0)
    scale = (bscale.astype(np.float64) * factor).astype(np.float32)
    return np.rint(b.astype(np.float64) / scale).astype(np.int32), scale


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
