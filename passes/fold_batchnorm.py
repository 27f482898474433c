"""Fold inference-mode BatchNormalization into the Conv, ConvTranspose or Gemm before it.

BN(y) = y * scale + shift with scale = gamma / sqrt(var + eps), shift = beta - mean * scale,
one (scale, shift) per channel. When y = W * x + b comes from a Conv/ConvTranspose/Gemm whose
output nothing else reads, scaling W's output channels and rewriting b gives the same result
with one node less. Any other BN becomes Mul + Add with constant scale and shift, so no
lowering ever sees a BatchNormalization. The arithmetic runs in float64 and is rounded to the
weight's dtype once.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir import const_array
from edgec.passes.base import (
    EdgecPass,
    ValueNames,
    add_initializer,
    drop_unused_initializers,
    take_place_of,
)
from edgec.passes.shape_inference import infer_shapes_in_place

_PRODUCERS = ("Conv", "ConvTranspose", "Gemm")


def _int_attr(node: ir.Node, name: str, default: int) -> int:
    attr = node.attributes.get(name)
    return default if attr is None else attr.as_int()


def _float_attr(node: ir.Node, name: str, default: float) -> float:
    attr = node.attributes.get(name)
    return default if attr is None else attr.as_float()


def _scale_and_shift(bn: ir.Node) -> tuple[np.ndarray, np.ndarray] | str:
    """The per-channel (scale, shift) BN applies, or why it cannot be computed."""
    if _int_attr(bn, "training_mode", 0):
        return "training_mode=1 normalizes with batch statistics"
    if any(out.uses() or out.is_graph_output() for out in bn.outputs[1:]):
        return "its running mean/var outputs are read (training form)"
    params = [const_array(v) for v in bn.inputs[1:5]]
    if len(params) < 4 or any(p is None for p in params):
        return "scale, bias, mean and var must all be constants"
    gamma, beta, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
    scale = gamma / np.sqrt(var + _float_attr(bn, "epsilon", 1e-5))
    return scale, beta - mean * scale


def _scale_output_channels(producer: ir.Node, weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """`weight` with each output channel multiplied by its entry of `scale`."""
    op = producer.op_type
    if op == "Conv":  # [C_out, C_in/group, *kernel]
        return weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    if op == "ConvTranspose":  # [C_in, C_out/group, *kernel]; output channel = g * C_out/group + j
        group = _int_attr(producer, "group", 1)
        c_in, per_group, *kernel = weight.shape
        grouped = weight.reshape(group, c_in // group, per_group, *kernel)
        s = scale.reshape((group, 1, per_group) + (1,) * len(kernel))
        return (grouped * s).reshape(weight.shape)
    # Gemm: B is [K, N], or [N, K] with transB=1
    if _int_attr(producer, "transB", 0):
        return weight * scale[:, None]
    return weight * scale[None, :]


def _output_channels(producer: ir.Node, weight: np.ndarray) -> int:
    if producer.op_type == "Conv":
        return weight.shape[0]
    if producer.op_type == "ConvTranspose":
        return weight.shape[1] * _int_attr(producer, "group", 1)
    return weight.shape[0] if _int_attr(producer, "transB", 0) else weight.shape[1]


def _why_not_foldable(bn: ir.Node, producer: ir.Node | None, channels: int) -> str | None:
    """Why BN cannot be folded into the node producing its input, or None when it can."""
    if producer is None:
        return "its input is not produced by a node"
    if producer.op_type not in _PRODUCERS or producer.domain not in ("", "ai.onnx"):
        return f"its input comes from {producer.op_type}, not Conv/ConvTranspose/Gemm"
    out = bn.inputs[0]
    if len(producer.outputs) != 1:
        return f"{producer.op_type} has {len(producer.outputs)} outputs"
    if out.is_graph_output() or len(out.uses()) != 1:
        return f"{producer.op_type} output '{out.name}' has other readers, which need it unscaled"
    weight = const_array(producer.inputs[1]) if len(producer.inputs) > 1 else None
    if weight is None:
        return f"{producer.op_type} weight is not a constant"
    bias_value = producer.inputs[2] if len(producer.inputs) > 2 else None
    if bias_value is not None and const_array(bias_value) is None:
        return f"{producer.op_type} bias is not a constant"
    if producer.op_type == "ConvTranspose" and weight.shape[0] % _int_attr(producer, "group", 1):
        return "ConvTranspose input channels are not divisible by group"
    if producer.op_type == "Gemm" and weight.ndim != 2:
        return "Gemm weight is not 2-D"
    if _output_channels(producer, weight) != channels:
        return f"{producer.op_type} has {_output_channels(producer, weight)} output channels, BN has {channels}"
    return None


class FoldBatchNorm(EdgecPass):
    name = "fold_batchnorm"

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        batchnorms = [n for n in graph if n.op_type == "BatchNormalization" and n.domain in ("", "ai.onnx")]
        if not batchnorms:
            return False
        if any(bn.inputs[0].shape is None for bn in batchnorms):
            infer_shapes_in_place(model)  # Mul+Add needs the input rank to broadcast per channel
        names = ValueNames(graph)
        folded: dict[str, int] = {}
        as_mul_add = 0
        for bn in batchnorms:
            params = _scale_and_shift(bn)
            if isinstance(params, str):
                self.refuse(bn, f"kept: {params}")
                continue
            scale, shift = params
            producer = bn.inputs[0].producer()
            reason = _why_not_foldable(bn, producer, len(scale))
            if reason is None:
                self._fold_into(graph, names, producer, bn, scale, shift)
                folded[producer.op_type] = folded.get(producer.op_type, 0) + 1
                continue
            rank = len(bn.inputs[0].shape) if bn.inputs[0].shape is not None else None
            if rank is None:
                self.refuse(bn, f"kept: not folded ({reason}) and its input rank is unknown")
                continue
            self.refuse(bn, f"became Mul+Add: {reason}")
            self._replace_with_mul_add(graph, names, bn, scale, shift, rank)
            as_mul_add += 1

        for op, count in folded.items():
            self.note(f"folded {count} BatchNormalization into {op}")
        if as_mul_add:
            self.note(f"{as_mul_add} BatchNormalization became Mul+Add")
        return bool(folded or as_mul_add)

    @staticmethod
    def _fold_into(graph, names, producer, bn, scale, shift) -> None:
        weight_value = producer.inputs[1]
        weight = const_array(weight_value)
        bias_value = producer.inputs[2] if len(producer.inputs) > 2 else None
        old_bias = const_array(bias_value) if bias_value is not None else None
        if old_bias is None:
            old_bias = np.zeros(len(scale))
        gemm_beta = _float_attr(producer, "beta", 1.0) if producer.op_type == "Gemm" else 1.0

        new_weight = _scale_output_channels(producer, weight.astype(np.float64), scale).astype(weight.dtype)
        # (b - mean) * scale + beta == b * scale + shift. Gemm's bias may broadcast over rows
        # ([N], [1, N], [M, N], scalar): numpy broadcasting against the per-column scale keeps
        # a shape that Gemm still accepts.
        new_bias = (gemm_beta * old_bias.astype(np.float64) * scale + shift).astype(weight.dtype)

        # New initializers rather than edits in place: the old weight may be shared.
        producer.replace_input_with(1, add_initializer(graph, names, f"{weight_value.name}_bn", new_weight))
        if len(producer.inputs) < 3:
            producer.resize_inputs(3)
        producer.replace_input_with(2, add_initializer(graph, names, f"{bn.outputs[0].name}_bias", new_bias))
        if producer.op_type == "Gemm":
            producer.attributes.pop("beta", None)  # already applied to the new bias

        bn_inputs = list(bn.inputs)
        take_place_of(bn.outputs[0], producer.outputs[0])
        graph.remove(bn, safe=True)
        drop_unused_initializers(graph, [weight_value, bias_value, *bn_inputs[1:]])

    @staticmethod
    def _replace_with_mul_add(graph, names, bn, scale, shift, rank) -> None:
        x = bn.inputs[0]
        dtype = np.dtype(x.dtype.numpy()) if x.dtype is not None else np.dtype(np.float32)
        channel_shape = (-1,) + (1,) * max(rank - 2, 0)  # broadcasts along axis 1 of [N, C, ...]
        base = bn.name or bn.outputs[0].name
        scale_value = add_initializer(graph, names, f"{base}_scale", scale.reshape(channel_shape).astype(dtype))
        shift_value = add_initializer(graph, names, f"{base}_shift", shift.reshape(channel_shape).astype(dtype))
        mul = ir.node("Mul", [x, scale_value], name=f"{base}/mul")
        mul.outputs[0].name = names.fresh(f"{base}_scaled")
        add = ir.node("Add", [mul.outputs[0], shift_value], name=f"{base}/add")
        mul.outputs[0].shape, mul.outputs[0].type = x.shape, x.type
        graph.insert_before(bn, [mul, add])

        bn_inputs = list(bn.inputs)
        take_place_of(bn.outputs[0], add.outputs[0])
        graph.remove(bn, safe=True)
        drop_unused_initializers(graph, bn_inputs[1:])
