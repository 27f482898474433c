"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"), exact form.

For two layers in a row, y = W2 f(W1 x + b1), with f positively homogeneous (identity, ReLU,
LeakyReLU, PReLU: f(x / s) = f(x) / s for s > 0), scaling output channel i of the first layer
by 1/s_i and input channel i of the second by s_i changes nothing in float, and with
s_i = sqrt(r1_i / r2_i) (r = the channel's weight range) both channels end up with the same
range. Per-channel int8 weights then lose less to channels whose range is tiny next to the
layer's largest (typical after BatchNorm folding in depthwise layers).

ReLU6 (Clip 0..6) is not homogeneous: clip(x / s, 0, 6) != clip(x, 0, 6) / s. Pairs across it
are refused (reported), not approximated: equalizing them would change what the model computes.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array
from edgec.passes.base import EdgecPass, ValueNames, add_initializer, drop_unused_initializers, sole_consumer

HOMOGENEOUS = {"Relu", "LeakyRelu", "PRelu"}
SWEEPS = 2  # chains (conv -> conv -> conv) converge in a couple of sweeps


def _out_channel_ranges(node: ir.Node, w: np.ndarray) -> np.ndarray | None:
    if node.op_type == "Conv":
        return np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    if node.op_type == "Gemm" and node.attributes.get_int("transB", 0):
        return np.abs(w).max(axis=1)
    return None


def _in_channel_ranges(node: ir.Node, w: np.ndarray, channels: int) -> np.ndarray | None:
    """Range of the weights reading each input channel (dense or depthwise consumers only)."""
    if node.op_type == "Conv":
        groups = node.attributes.get_int("group", 1)
        if groups == 1 and w.shape[1] == channels:
            return np.abs(w).transpose(1, 0, 2, 3).reshape(channels, -1).max(axis=1)
        if groups == channels and w.shape[0] == channels and w.shape[1] == 1:
            return np.abs(w).reshape(channels, -1).max(axis=1)
        return None
    if node.op_type == "Gemm" and node.attributes.get_int("transB", 0) and w.shape[1] == channels:
        return np.abs(w).max(axis=0)
    return None


def _scale_in_channels(node: ir.Node, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    if node.op_type == "Conv" and node.attributes.get_int("group", 1) == 1:
        return w * s.reshape(1, -1, 1, 1)
    if node.op_type == "Conv":  # depthwise: input channel i is filter i
        return w * s.reshape(-1, 1, 1, 1)
    return w * s.reshape(1, -1)  # Gemm transB=1: W2 [M, N]


class CrossLayerEqualization(EdgecPass):
    name = "cross_layer_equalization"

    def __init__(self) -> None:
        super().__init__()
        # tensor -> s per channel, with original = equalized * s: calibration derives the
        # un-equalized graph's statistics from the equalized one's instead of running both.
        self.channel_scales: dict[str, np.ndarray] = {}

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        names = ValueNames(graph)
        self.channel_scales = {}
        pairs = self._pairs(graph)
        if not pairs:
            return False
        for _ in range(SWEEPS):
            for first, second in pairs:
                s = self._equalize(graph, names, first, second)
                for value in _between(first, second):
                    self.channel_scales[value.name] = self.channel_scales.get(value.name, 1.0) * s
        self.note(f"equalized {len(pairs)} layer pair(s)")
        return True

    def _pairs(self, graph: ir.Graph) -> list[tuple[ir.Node, ir.Node]]:
        pairs = []
        for node in graph:
            if node.op_type not in ("Conv", "Gemm") or const_array(node.inputs[1]) is None:
                continue
            nxt = sole_consumer(node.outputs[0])
            if nxt is None:
                continue
            if nxt.op_type in HOMOGENEOUS or nxt.op_type == "Clip":
                if nxt.op_type == "Clip":
                    self.refuse(node, "followed by Clip (e.g. ReLU6), which is not scale-equivariant")
                    continue
                if nxt.op_type == "PRelu" and const_array(nxt.inputs[1]) is None:
                    continue
                nxt = sole_consumer(nxt.outputs[0])
                if nxt is None:
                    continue
            if nxt.op_type not in ("Conv", "Gemm") or const_array(nxt.inputs[1]) is None:
                continue
            w1, w2 = const_array(node.inputs[1]), const_array(nxt.inputs[1])
            r1 = _out_channel_ranges(node, w1)
            r2 = _in_channel_ranges(nxt, w2, w1.shape[0]) if r1 is not None else None
            if r1 is None or r2 is None:
                self.refuse(node, f"{node.op_type} -> {nxt.op_type} pair of a shape this pass does not equalize")
                continue
            pairs.append((node, nxt))
        return pairs

    @staticmethod
    def _equalize(graph: ir.Graph, names: ValueNames, first: ir.Node, second: ir.Node) -> np.ndarray:
        """Rescale the pair; returns s (the tensors between them are now original / s)."""
        old = [first.inputs[1], first.inputs[2] if len(first.inputs) > 2 else None, second.inputs[1]]
        w1, w2 = const_array(first.inputs[1]), const_array(second.inputs[1])
        r1 = _out_channel_ranges(first, w1)
        r2 = _in_channel_ranges(second, w2, w1.shape[0])
        s = np.where((r1 > 0) & (r2 > 0), np.sqrt(r1 / np.maximum(r2, 1e-30)), 1.0).astype(np.float32)
        shape = (-1,) + (1,) * (w1.ndim - 1)
        first.replace_input_with(1, add_initializer(graph, names, f"{first.inputs[1].name}_eq", (w1 / s.reshape(shape)).astype(np.float32)))
        b1 = const_array(first.inputs[2]) if len(first.inputs) > 2 and first.inputs[2] is not None else None
        if b1 is not None:
            first.replace_input_with(2, add_initializer(graph, names, f"{first.inputs[2].name}_eq", (b1 / s).astype(np.float32)))
        second.replace_input_with(1, add_initializer(graph, names, f"{second.inputs[1].name}_eq",
                                                     _scale_in_channels(second, w2, s).astype(np.float32)))
        drop_unused_initializers(graph, old)
        return s


def _between(first: ir.Node, second: ir.Node) -> list[ir.Value]:
    """The tensors from `first`'s output to `second`'s input (with the activation between)."""
    values = [first.outputs[0]]
    if second.inputs[0] is not first.outputs[0]:
        values.append(second.inputs[0])
    return values
