"""Will XNNPACK run this model with its sparse (NCHW) kernels? An answer from the IR, with reasons.

XNNPACK decides at load time, in `xnn_subgraph_rewrite_for_nchw` (src/subgraph.c), and says
nothing outside a debug build. This module replays that decision on the float ONNX IR, as
the sparse TFLite lowering will hand the graph to XNNPACK (stride-2 convs padded with a
PAD of the whole ONNX padding + VALID, which XNNPACK folds back into the conv):

1. Each node gets layout flags. NCHW: 1x1 convs (stride 1, no padding, groups 1), depthwise
   3x3 / 5x5 (stride 1 or 2, padding k//2 on every side, multiplier 1), 4-D Add/Mul,
   unary ops on 4-D tensors. Entry (NHWC in, NCHW out): a 3x3 stride-2 conv with padding 1
   on every side over exactly 3 input channels. Exit (NCHW in, NHWC out): global average
   pooling / mean over H and W.
2. Regions grow back from each exit through producers that have NCHW or entry flags; a
   region is dropped when one of its nodes reads a graph input or a node that has no NCHW
   kernel, or when a value its nodes read also feeds something outside it (or is a graph
   output).
3. A surviving region switches to NCHW only when more than 2/3 of its 1x1 weights are zero.

Per 1x1 layer the report also gives the block shape XNNPACK's kernel selection will pick
(src/operators/convolution-nchw.c: 4x1 when whole 4-output-channel blocks hold 90% of the
nonzeros, else 2x1 likewise, else 1x1). On WebAssembly the 2x1 and 4x1 kernels are scalar
(src/configs/spmm-config.c), slower than the SIMD 1x1 one: unstructured pruning wins there.

The result is a prediction, checked against XNNPACK's behaviour by timing (tests/test_sparse_wasm.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array, node_label, static_shape

NCHW, ENTRY, EXIT = 1, 2, 4  # XNNPACK's COMPATIBLE_NCHW, COMPATIBLE_NHWC2NCHW, COMPATIBLE_NCHW2NHWC
MIN_ZERO_FRACTION = 2 / 3  # exclusive: XNNPACK wants zeros * 3 > params * 2

# ONNX ops the TFLite lowering turns into XNNPACK unary elementwise nodes (or fuses into the
# conv before them: either way they do not break a region).
UNARY = {"Relu", "Clip", "Sigmoid", "HardSwish", "LeakyRelu", "Elu", "Tanh", "Abs", "Neg", "Exp",
         "Floor", "Ceil", "Sqrt", "Gelu", "Identity", "Dropout"}


@dataclasses.dataclass
class Layer:
    """A 1x1 convolution or fully connected layer: how sparse it is and where it runs."""

    node: str
    op: str
    shape: tuple[int, int]  # [output channels, input channels]
    zeros: int
    block: str  # the block shape XNNPACK's kernel selection picks for these weights
    region: int | None = None  # index into SparseReport.regions; None: outside every region

    @property
    def sparsity(self) -> float:
        return self.zeros / (self.shape[0] * self.shape[1])

    def as_dict(self) -> dict:
        return {"node": self.node, "op": self.op, "shape": list(self.shape), "zeros": self.zeros,
                "sparsity": round(self.sparsity, 4), "xnnpack_block": self.block, "region": self.region}


@dataclasses.dataclass
class Region:
    """A connected set of nodes XNNPACK considers for NCHW, from its exit(s) back."""

    entry: list[str]
    exit: list[str]
    nodes: int
    zeros: int  # over the region's 1x1 weights
    params: int
    qualifies: bool
    reasons: list[str]

    @property
    def zero_fraction(self) -> float:
        return self.zeros / self.params if self.params else 0.0

    def as_dict(self) -> dict:
        return {"entry": self.entry, "exit": self.exit, "nodes": self.nodes, "zeros_1x1": self.zeros,
                "params_1x1": self.params, "zero_fraction_1x1": round(self.zero_fraction, 4),
                "qualifies": self.qualifies, "reasons": self.reasons}


@dataclasses.dataclass
class SparseReport:
    qualifies: bool
    reasons: list[str]  # why not, when it does not
    regions: list[Region]
    layers: list[Layer]

    def as_dict(self) -> dict:
        return {"xnnpack_sparse_inference": self.qualifies, "reasons": self.reasons,
                "regions": [r.as_dict() for r in self.regions], "layers": [layer.as_dict() for layer in self.layers],
                "predicted_from": "edgec's replay of XNNPACK's xnn_subgraph_rewrite_for_nchw on the IR"}

    def summary(self) -> str:
        if self.qualifies:
            r = max((r for r in self.regions if r.qualifies), key=lambda r: r.params)
            return (f"XNNPACK sparse inference: yes ({r.nodes} nodes in NCHW, {r.zero_fraction:.1%} of their "
                    f"1x1 weights zero)")
        return "XNNPACK sparse inference: no; " + "; ".join(self.reasons[:3])


# -- step 1: what each node is to XNNPACK --------------------------------------------------

def _pads(node: ir.Node, in_hw: tuple[int, int], kernel: tuple[int, int], strides) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) the conv reads with, auto_pad resolved."""
    auto_pad = node.attributes.get_string("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        dilations = node.attributes.get_ints("dilations", [1, 1])
        pads = []
        for i in range(2):
            eff = (kernel[i] - 1) * dilations[i] + 1
            out = -(-in_hw[i] // strides[i])
            total = max((out - 1) * strides[i] + eff - in_hw[i], 0)
            small, large = total // 2, total - total // 2
            pads.append((small, large) if auto_pad == "SAME_UPPER" else (large, small))
        return pads[0][0], pads[1][0], pads[0][1], pads[1][1]
    if auto_pad == "VALID":
        return 0, 0, 0, 0
    return tuple(node.attributes.get_ints("pads", [0, 0, 0, 0]))  # type: ignore[return-value]


def _conv_flags(node: ir.Node) -> tuple[int, str]:
    w = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    x_shape = static_shape(node.inputs[0])
    if w is None or w.ndim != 4 or x_shape is None or len(x_shape) != 4:
        return 0, "not a 2-D convolution with constant weights and a static input shape"
    kernel = tuple(int(k) for k in w.shape[2:])
    strides = tuple(node.attributes.get_ints("strides", [1, 1]))
    dilations = tuple(node.attributes.get_ints("dilations", [1, 1]))
    group = node.attributes.get_int("group", 1)
    channels = x_shape[1]
    pads = _pads(node, x_shape[2:], kernel, strides)
    if dilations != (1, 1):
        return 0, f"dilations {list(dilations)}; XNNPACK's NCHW kernels take none"
    if group == channels and w.shape[1] == 1 and group > 1:
        if w.shape[0] != channels:
            return 0, f"depthwise multiplier {w.shape[0] // channels}; XNNPACK's NCHW depthwise needs 1"
        if kernel not in ((3, 3), (5, 5)):
            return 0, f"depthwise {kernel[0]}x{kernel[1]}; XNNPACK's NCHW depthwise kernels are 3x3 and 5x5"
        if strides not in ((1, 1), (2, 2)):
            return 0, f"depthwise strides {list(strides)}; XNNPACK's NCHW depthwise takes 1 or 2"
        want = kernel[0] // 2
        if pads != (want,) * 4:
            return 0, _padding_reason(pads, want, strides)
        return NCHW, ""
    if group != 1:
        return 0, f"grouped convolution (group={group}); XNNPACK's NCHW kernels take groups 1 or depthwise"
    if kernel == (1, 1):
        if strides != (1, 1):
            return 0, f"1x1 conv with strides {list(strides)}; XNNPACK's sparse 1x1 kernels take stride 1"
        if any(pads):
            return 0, f"1x1 conv with padding {list(pads)}; XNNPACK's sparse 1x1 kernels take none"
        return NCHW, ""
    if kernel == (3, 3):
        if strides != (2, 2):
            return 0, (f"3x3 conv with strides {list(strides)}; the only full conv XNNPACK runs in NCHW is the "
                       "3x3 stride-2 first layer")
        if pads != (1, 1, 1, 1):
            return 0, _padding_reason(pads, 1, strides)
        if channels != 3:
            return 0, (f"3x3 stride-2 conv reads {channels} channel(s); XNNPACK's NCHW entry conv needs exactly 3 "
                       "(an RGB image)")
        return ENTRY, ""
    return 0, (f"{kernel[0]}x{kernel[1]} conv; XNNPACK's NCHW kernels are 1x1, depthwise 3x3/5x5 and the "
               "3x3 stride-2 stem")


def _padding_reason(pads, want: int, strides) -> str:
    top, left, bottom, right = pads
    text = (f"padding top/left/bottom/right {top}/{left}/{bottom}/{right}; XNNPACK's NCHW kernels need {want} "
            "on every side")
    if max(strides) > 1 and (top, left) != (bottom, right):
        text += (" (SAME padding on a stride-2 conv is asymmetric: export the model with symmetric padding, "
                 f"e.g. torch nn.Conv2d(..., stride=2, padding={want}))")
    return text


def _elementwise_flags(node: ir.Node) -> tuple[int, str]:
    for value in node.inputs:
        array = const_array(value)
        if array is not None:
            if sum(d != 1 for d in array.shape) > 1:
                return 0, f"{node.op_type} with a constant that is neither a scalar nor a per-channel vector"
            continue
        shape = static_shape(value)
        if shape is None:
            return 0, f"{node.op_type} input '{value.name}' has no static shape (run shape inference)"
        if len(shape) != 4:
            return 0, f"{node.op_type} on a {len(shape)}-D tensor; XNNPACK's NCHW ops are 4-D"
    return NCHW, ""


def _mean_flags(node: ir.Node) -> tuple[int, str]:
    shape = static_shape(node.inputs[0])
    if shape is None or len(shape) != 4:
        return 0, "global pooling needs a 4-D input"
    if node.op_type == "ReduceMean":
        axes = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        axes = node.attributes.get_ints("axes", []) if axes is None else axes.reshape(-1).tolist()
        if sorted(int(a) % 4 for a in axes) != [2, 3]:
            return 0, "ReduceMean over other axes than H and W"
    return NCHW | EXIT, ""


def node_flags(node: ir.Node) -> tuple[int, str]:
    """(XNNPACK layout flags, why not NCHW when 0) for one node of the float IR."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return 0, f"custom op {node.domain}::{op}"
    if op == "Conv":
        return _conv_flags(node)
    if op in ("Add", "Mul"):
        return _elementwise_flags(node)
    if op in UNARY:
        shape = static_shape(node.inputs[0])
        if shape is None:
            return 0, f"{op} input has no static shape (run shape inference)"
        if len(shape) != 4:
            return 0, f"{op} on a {len(shape)}-D tensor; XNNPACK's NCHW ops are 4-D"
        return NCHW, ""
    if op in ("GlobalAveragePool", "ReduceMean"):
        return _mean_flags(node)
    return 0, f"{op} has no NCHW kernel in XNNPACK"


# -- step 2 and 3: regions, as xnn_subgraph_rewrite_for_nchw forms them --------------------

class _Regions:
    """Union-find over nodes (the connected components XNNPACK's cluster leaders stand for)."""

    def __init__(self, nodes: list[ir.Node]):
        self.parent = {n: n for n in nodes}

    def find(self, n: ir.Node) -> ir.Node:
        while self.parent[n] is not n:
            self.parent[n] = self.parent[self.parent[n]]
            n = self.parent[n]
        return n

    def union(self, a: ir.Node, b: ir.Node) -> None:
        self.parent[self.find(a)] = self.find(b)


def _dynamic_inputs(node: ir.Node) -> list[ir.Value]:
    return [v for v in node.inputs if v is not None and const_array(v) is None]


def _weight_matrix(node: ir.Node) -> np.ndarray | None:
    """[out, in] weights of a 1x1 conv (groups 1) or a fully connected layer, else None."""
    w = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if w is None:
        return None
    if node.op_type == "Conv":
        if w.ndim == 4 and w.shape[2:] == (1, 1) and node.attributes.get_int("group", 1) == 1:
            return w.reshape(w.shape[0], w.shape[1])
        return None
    if node.op_type in ("Gemm", "MatMul") and w.ndim == 2 and const_array(node.inputs[0]) is None:
        trans_b = node.op_type == "Gemm" and node.attributes.get_int("transB", 0)
        return w if trans_b else w.T
    return None


def xnnpack_block(matrix: np.ndarray) -> str:
    """The output-channel block XNNPACK's sparse 1x1 conv picks for these [out, in] weights
    (the 90% rule of xnn_create_convolution2d_nchw_f32)."""
    nz = matrix != 0
    rows = matrix.shape[0]
    r4, r2 = rows - rows % 4, rows - rows % 2
    quads = nz[:r4].reshape(-1, 4, nz.shape[1])
    block4_nonzeros = int(quads.sum())
    blocks4 = int(quads.any(axis=1).sum())
    pairs = nz[:r2].reshape(-1, 2, nz.shape[1])
    block2_nonzeros = int(pairs.sum())
    blocks2 = int(pairs.any(axis=1).sum())
    if block4_nonzeros * 5 >= blocks4 * 18:
        return "4x1"
    if block2_nonzeros * 5 >= blocks2 * 9:
        return "2x1"
    return "1x1"


def analyze(model: ir.Model) -> SparseReport:
    """Replay XNNPACK's NCHW/sparse decision on the float IR; see the module docstring."""
    graph = model.graph
    nodes = [n for n in graph if n.op_type != "Constant"]
    flags, why_not = {}, {}
    for n in nodes:
        flags[n], why_not[n] = node_flags(n)
    regions = _Regions(nodes)
    broken: dict[ir.Node, list[str]] = {n: [] for n in nodes}  # node -> why its region is dropped
    knock_on: set[str] = set()  # reasons that only repeat another node's failure

    def join_producers(node: ir.Node) -> bool:
        changed = False
        for value in _dynamic_inputs(node):
            producer = value.producer()
            if producer is None:
                broken[node].append(f"{node.op_type} '{node_label(node)}' reads graph input '{value.name}' directly "
                                    "(a region starts at a 3x3 stride-2 conv on 3 channels)")
                continue
            if flags.get(producer, 0) & (ENTRY | NCHW) and not broken[producer]:
                if regions.find(producer) is not regions.find(node):
                    regions.union(producer, node)
                    changed = True
            else:
                reason = why_not.get(producer)
                text = (f"'{value.name}' comes from {producer.op_type} '{node_label(producer)}': "
                        f"{reason or 'itself cut off from the region by its own inputs'}")
                broken[node].append(text)
                if not reason:
                    knock_on.add(text)
        return changed

    exits = [n for n in nodes if flags[n] & EXIT]
    for n in exits:
        join_producers(n)
    changed = True
    while changed:  # grow regions back from the exits until nothing joins
        changed = False
        for n in nodes:
            if flags[n] & (NCHW | EXIT) and not broken[n] and any(regions.find(n) is regions.find(e) for e in exits):
                changed |= join_producers(n)

    members: dict[ir.Node, list[ir.Node]] = {}
    for n in nodes:
        members.setdefault(regions.find(n), []).append(n)
    result_regions, region_of = [], {}
    for leader, group in members.items():
        in_region = [n for n in group if flags[n] & (NCHW | EXIT | ENTRY)]
        if not any(flags[n] & EXIT for n in group) or len(in_region) < 2:
            continue
        reasons = [r for n in group for r in broken[n]]
        reasons += _stray_consumers(group, flags)
        zeros = params = 0
        for n in group:
            w = _weight_matrix(n)
            if w is not None and n.op_type == "Conv":
                zeros += int(np.sum(w == 0))
                params += w.size
        if not params:
            reasons.append("no 1x1 convolution in the region")
        elif zeros * 3 <= params * 2:
            reasons.append(f"{zeros / params:.1%} of the region's 1x1 weights are zero; XNNPACK needs more than "
                           f"{MIN_ZERO_FRACTION:.1%} (prune further)")
        index = len(result_regions)
        for n in group:
            region_of[n] = index
        # Root causes first; what only follows from them last.
        reasons = [r for r in reasons if r not in knock_on] + [r for r in reasons if r in knock_on]
        result_regions.append(Region(
            entry=[node_label(n) for n in group if flags[n] & ENTRY],
            exit=[node_label(n) for n in group if flags[n] & EXIT],
            nodes=len(in_region), zeros=zeros, params=params, qualifies=not reasons, reasons=_unique(reasons)))

    layers = []
    for n in nodes:
        w = _weight_matrix(n)
        if w is None:
            continue
        layers.append(Layer(node_label(n), n.op_type, tuple(w.shape), int(np.sum(w == 0)), xnnpack_block(w),
                            region_of.get(n)))
    qualifies = any(r.qualifies for r in result_regions)
    if qualifies:
        reasons = []
    elif result_regions:
        main = max(result_regions, key=lambda r: (r.params, r.nodes))
        reasons = [r for r in main.reasons if r not in knock_on] or main.reasons
    else:
        reasons = ["no region: nothing ends in a global average pool / mean fed by NCHW-capable ops"]
        reasons += _unique(r for n in nodes if flags[n] & EXIT for r in broken[n])
    return SparseReport(qualifies, reasons, result_regions, layers)


def _stray_consumers(group: list[ir.Node], flags: dict) -> list[str]:
    """Values read inside the region that something outside it reads too (or that are graph outputs)."""
    inside = {n for n in group if flags[n] & (NCHW | EXIT)}
    reasons = []
    for n in inside:
        for value in _dynamic_inputs(n):
            outside = [u for u, _ in value.uses() if u not in inside]
            if value.is_graph_output():
                reasons.append(f"'{value.name}' inside the region is also a graph output")
            for user in outside:
                reasons.append(f"'{value.name}' inside the region also feeds {user.op_type} '{node_label(user)}' "
                               "outside it (a branch leaving the region)")
    return reasons


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
