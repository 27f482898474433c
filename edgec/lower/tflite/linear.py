"""Gemm and MatMul -> FULLY_CONNECTED (constant 2-D weights) or BATCH_MATMUL.

FULLY_CONNECTED contracts the last axis and flattens the others, so its input may stay in
any layout that keeps the contracted axis last, and its output keeps that layout. A
following Add of a constant vector over the output features becomes the FC bias (not in a
quantized graph where the product is rounded to int8 before the Add).

In int8 the weights are the QDQ graph's integers stored [out, in] with per-output-channel
scales (quantized_dimension 0) and the bias is int32 on input scale x weight scale.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import static_shape
from edgec.lower.tflite import layout, quantized
from edgec.lower.tflite.activations import take_fused_activation
from edgec.lower.tflite.common import attr, const_input
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.elementwise import operand
from edgec.lower.tflite.registry import visitor


def _fc_input(ctx: LoweringContext, x: ir.Value) -> tuple[int, tuple[int, ...]]:
    """`x` in a layout with its last ONNX axis last: (tensor, perm)."""
    rank = len(ctx.shape(x))
    perm = ctx.perm(x)
    if ctx.const(x) is None and perm[-1] == rank - 1:
        return ctx.tensor(x, perm), perm
    return ctx.tensor(x), layout.identity(rank)


def _bias_add(ctx: LoweringContext, out: ir.Value, features: int) -> tuple[ir.Node, np.ndarray] | None:
    """A following `out + b` with constant b over the last axis only, which FC can absorb."""
    consumer = ctx.sole_consumer(out)
    if ctx.is_quantization_point(out):
        return None
    if consumer is None or consumer.op_type != "Add" or consumer.domain not in ("", "ai.onnx"):
        return None
    other = consumer.inputs[1] if consumer.inputs[0] is out else consumer.inputs[0]
    bias = ctx.const(other)
    if bias is None or bias.size != features or (bias.ndim and bias.shape[-1] != features):
        return None
    if bias.ndim > len(ctx.shape(out)):
        return None
    return consumer, bias.reshape(features).astype(np.float32)


def fully_connected(ctx: LoweringContext, src: int, perm: tuple[int, ...], weights: np.ndarray,
                    bias: np.ndarray | None, out: ir.Value, fuse_bias_add: bool = True,
                    int8_operands: tuple[int, int] | None = None) -> None:
    """out = x @ weights.T + bias, constant (N, K) weights; `src` holds x with `perm` (K last).

    `int8_operands`: the (int8 weight, int32 bias) tensors of an integer node, used instead.
    """
    features = weights.shape[0]
    fused = _bias_add(ctx, out, features) if fuse_bias_add and int8_operands is None else None
    if fused is not None:
        add_node, extra = fused
        ctx.claim(add_node)
        bias = extra if bias is None else bias + extra
        out = add_node.outputs[0]
    if bias is None:
        bias = np.zeros(features, np.float32)
    activation, out = take_fused_activation(ctx, out)
    dst = ctx.define(out, perm)
    options = schema.FullyConnectedOptionsT(keepNumDims=len(perm) > 2, fusedActivationFunction=activation)
    if int8_operands is not None:
        operands = list(int8_operands)
    else:
        operands = [ctx.const_tensor(weights.astype(np.float32), "weights"), ctx.const_tensor(bias, "bias")]
    ctx.emit("FULLY_CONNECTED", [src, *operands], [dst], options)


def _int8_operands(ctx: LoweringContext, x: ir.Value, w: ir.Value, bias: ir.Value | None,
                   stored: tuple[int, ...]) -> tuple[int, int] | None:
    """(int8 [N, K] weights, int32 bias) for an integer node; `stored` permutes ONNX's weight
    to [N, K]. None in a float node."""
    if ctx.quantized_const(w) is None:
        return None
    features = ctx.shape(w)[stored[0]]
    return ctx.tensor(w, stored), quantized.bias_tensor(ctx, bias, x, w, features)


def _matmul_operand(ctx: LoweringContext, value: ir.Value) -> tuple[int, bool]:
    """`value` for BATCH_MATMUL: (tensor, adjoint) using a held swap of the last two axes."""
    rank = len(ctx.shape(value))
    swapped = (*range(rank - 2), rank - 1, rank - 2)
    if ctx.const(value) is None and ctx.perm(value) == swapped:
        return ctx.tensor(value, swapped), True
    return ctx.tensor(value), False


def batch_matmul(ctx: LoweringContext, a: ir.Value, b: ir.Value, out: ir.Value) -> None:
    ta, adj_a = _matmul_operand(ctx, a)
    tb, adj_b = _matmul_operand(ctx, b)
    dst = ctx.define(out)
    ctx.emit("BATCH_MATMUL", [ta, tb], [dst], schema.BatchMatMulOptionsT(adjX=adj_a, adjY=adj_b))


def _check_matmul(node: ir.Node) -> str | None:
    """not both constant (float: a 1-D operand becomes 2-D, numpy rules): constant 2-D B becomes FULLY_CONNECTED, else BATCH_MATMUL."""
    a, b = (static_shape(v) for v in node.inputs)
    if len(a) < 2 or len(b) < 2:
        return f"1-D operand (shapes {list(a)} and {list(b)}); reshape it to 2-D"
    if const_input(node, 0) is not None and const_input(node, 1) is not None:
        return "both operands are constant; run constant folding first"
    return None


def _int8_matmul(node: ir.Node) -> str | None:
    """a constant B must be 2-D (FULLY_CONNECTED with per-channel weights)."""
    b = const_input(node, 1)
    if b is not None and b.ndim != 2:
        return "a constant operand of rank > 2 would be an int8 BATCH_MATMUL with per-channel weights"
    return None


@visitor("MatMul", check=_check_matmul, int8=_int8_matmul)
def lower_matmul(node: ir.Node, ctx: LoweringContext) -> None:
    a, b = node.inputs
    w = ctx.const(b)
    if w is not None and w.ndim == 2:
        src, perm = _fc_input(ctx, a)
        fully_connected(ctx, src, perm, w.T, None, node.outputs[0],
                        int8_operands=_int8_operands(ctx, a, b, None, (1, 0)))
    else:
        batch_matmul(ctx, a, b, node.outputs[0])


def _int8_gemm(node: ir.Node) -> str | None:
    """constant B, alpha = beta = 1, C a constant bias over the output features."""
    if const_input(node, 1) is None or const_input(node, 0) is not None:
        return "only Gemm with constant weights lowers to int8 (FULLY_CONNECTED)"
    if float(attr(node, "alpha", 1.0)) != 1.0 or float(attr(node, "beta", 1.0)) != 1.0:
        return "alpha/beta != 1"
    c = const_input(node, 2) if len(node.inputs) > 2 and node.inputs[2] is not None else None
    if len(node.inputs) > 2 and node.inputs[2] is not None and (c is None or c.size != static_shape(node.outputs[0])[1]):
        return "C is not a constant bias over the output features"
    return None


@visitor("Gemm", int8=_int8_gemm)
def lower_gemm(node: ir.Node, ctx: LoweringContext) -> None:
    a, b = node.inputs[:2]
    c = node.inputs[2] if len(node.inputs) > 2 else None
    alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
    trans_a, trans_b = attr(node, "transA", 0), attr(node, "transB", 0)
    out = node.outputs[0]
    n_features = ctx.shape(out)[1]
    w = ctx.const(b)
    c_const = ctx.const(c) if c is not None else None
    # C folds into the FC bias when it is constant and varies over output features only.
    bias_ok = c is None or (c_const is not None and c_const.size in (1, n_features)
                            and (c_const.ndim < 2 or c_const.shape[0] == 1))
    if w is None or not bias_ok or ctx.const(a) is not None:
        _gemm_general(ctx, node, a, b, c, alpha, beta, trans_a, trans_b)
        return
    weights = alpha * (w if trans_b else w.T)
    bias = None if c is None else np.broadcast_to(beta * c_const.reshape(-1), (n_features,)).copy()
    # With transA the FC input is A^T: A held with its two axes swapped (often free).
    src = ctx.tensor(a, (1, 0)) if trans_a else ctx.tensor(a)
    fully_connected(ctx, src, (0, 1), weights, bias, out, fuse_bias_add=c is None,
                    int8_operands=_int8_operands(ctx, a, b, c, (0, 1) if trans_b else (1, 0)))


def _gemm_general(ctx: LoweringContext, node: ir.Node, a: ir.Value, b: ir.Value, c: ir.Value | None,
                  alpha: float, beta: float, trans_a: int, trans_b: int) -> None:
    """Gemm with a computed B or a full (M, N) C: BATCH_MATMUL, then scale and add."""
    ta = ctx.tensor(a)
    tb = ctx.tensor(b)
    out_shape = ctx.shape(node.outputs[0])
    has_tail = alpha != 1.0 or c is not None
    product = ctx.temp(out_shape, hint="matmul") if has_tail else ctx.define(node.outputs[0])
    ctx.emit("BATCH_MATMUL", [ta, tb], [product],
             schema.BatchMatMulOptionsT(adjX=bool(trans_a), adjY=bool(trans_b)))
    if not has_tail:
        return
    result = ctx.define(node.outputs[0])
    if alpha != 1.0:
        scaled = ctx.temp(out_shape, hint="alpha") if c is not None else result
        ctx.emit("MUL", [product, ctx.float32(alpha, "alpha")], [scaled], schema.MulOptionsT())
        product = scaled
    if c is not None and ctx.const(c) is not None:
        c_tensor = ctx.const_tensor(layout.align_rank(beta * ctx.const(c).astype(np.float32), 2), "beta_c")
        ctx.emit("ADD", [product, c_tensor], [result], schema.AddOptionsT())
    elif c is not None:
        c_tensor = operand(ctx, c, 2, (0, 1))
        if beta != 1.0:
            c_scaled = ctx.temp(ctx.graph.shape(c_tensor), hint="beta_c")
            ctx.emit("MUL", [c_tensor, ctx.float32(beta, "beta")], [c_scaled], schema.MulOptionsT())
            c_tensor = c_scaled
        ctx.emit("ADD", [product, c_tensor], [result], schema.AddOptionsT())
