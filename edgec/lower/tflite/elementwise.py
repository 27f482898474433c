"""Broadcasting binary ops: Add, Sub, Mul, Div, Max, Min, PRelu, Pow.

The output takes the layout (among its activation operands' own) that moves the fewest
elements; other activations are brought to it, and constants are rank-aligned (numpy
broadcasting) and permuted at compile time, so a bias or a per-channel scale costs no
TRANSPOSE.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import node_label, numpy_dtype
from edgec.lower.tflite import layout, quantized
from edgec.lower.tflite.activations import take_fused_activation
from edgec.lower.tflite.common import const_input
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.layout import Perm
from edgec.lower.tflite.qdq import ActivationParams, QuantizedConstant
from edgec.lower.tflite.registry import NUMERIC, visitor

_BINARY = {
    "Add": ("ADD", schema.AddOptionsT),
    "Sub": ("SUB", schema.SubOptionsT),
    "Mul": ("MUL", schema.MulOptionsT),
    "Div": ("DIV", schema.DivOptionsT),
    "Max": ("MAXIMUM", None),
    "Min": ("MINIMUM", None),
}


def output_layout(ctx: LoweringContext, node: ir.Node) -> Perm:
    """The layout, among the activation operands' own, that needs the fewest moved elements.

    Ties go to the largest operand (first listed), so a residual Add of NHWC tensors stays NHWC.
    """
    out_rank = len(ctx.shape(node.outputs[0]))
    activations = [
        v for v in node.inputs
        if v is not None and ctx.const(v) is None and len(ctx.shape(v)) == out_rank
    ]
    if not activations:
        return layout.identity(out_rank)
    by_size = sorted(activations, key=lambda v: -math.prod(ctx.shape(v)))
    candidates = [ctx.perm(v) for v in by_size]
    return min(candidates, key=lambda perm: sum(ctx.conversion_cost(v, perm) for v in activations))


def operand(ctx: LoweringContext, value: ir.Value, out_rank: int, perm: Perm,
            zero_grid: ActivationParams | None = None) -> int:
    """`value` as a TFLite operand that broadcasts against an output held with `perm`.

    An int8 constant of zeros goes on `zero_grid` (the other operand's parameters): its own
    range is empty, so its scale is near 0, and XNNPACK's int8 ADD/SUB refuse operands whose
    scale is that far from the output's; zeros are exact on any grid.
    """
    array = ctx.const(value)
    qc = ctx.quantized_const(value)
    if qc is not None and zero_grid is not None and not qc.per_axis and np.all(qc.values == qc.zero_point):
        dtype = quantized.activation_dtype(zero_grid)
        qc = QuantizedConstant(np.full(qc.values.shape, zero_grid.zero_point, dtype),
                               np.float32(zero_grid.scale), dtype(zero_grid.zero_point), None, zero_grid.bits)
    if qc is not None:
        data, dtype, quant = quantized.constant_in_layout(qc, out_rank, perm)
        shape = layout.permute((1,) * (out_rank - array.ndim) + array.shape, perm) if array.ndim else ()
        return ctx.graph.add_tensor(f"{node_label(ctx.node)}/{value.name}", shape, dtype, data=data,
                                    quantization=quant)
    if array is not None:
        # Masks and token-id arithmetic keep their integer or bool constants.
        dtype = numpy_dtype(value)
        dtype = np.float32 if np.issubdtype(dtype, np.floating) else dtype
        data = layout.const_in_layout(array.astype(dtype), out_rank, perm)
        return ctx.const_tensor(data, value.name)
    shape = ctx.shape(value)
    if len(shape) == out_rank:
        return ctx.tensor(value, perm)
    # A lower-rank activation: align its rank first (bytes unchanged), then its layout.
    aligned = (1,) * (out_rank - len(shape)) + shape
    src = ctx.tensor(value)
    reshaped = ctx.temp_like(src, aligned, hint=f"{value.name}/aligned")
    ctx.emit("RESHAPE", [src, ctx.int32(aligned)], [reshaped])
    if layout.is_memory_noop(aligned, perm):
        return _reshape(ctx, reshaped, layout.permute(aligned, perm))
    out = ctx.temp_like(src, layout.permute(aligned, perm), hint=f"{value.name}/relayout")
    ctx.layout_transposes += 1
    ctx.emit("TRANSPOSE", [reshaped, ctx.int32(perm, "perm")], [out])
    return out


def _reshape(ctx: LoweringContext, tensor: int, shape) -> int:
    if tuple(ctx.graph.shape(tensor)) == tuple(shape):
        return tensor
    out = ctx.temp_like(tensor, shape, hint="reshape")
    ctx.emit("RESHAPE", [tensor, ctx.int32(shape)], [out])
    return out


def lower_binary(ctx: LoweringContext, node: ir.Node, op: str, options=None) -> None:
    perm = output_layout(ctx, node)
    out_rank = len(perm)
    grid = next((ctx.qparams(v) for v in node.inputs if ctx.const(v) is None), None)
    inputs = [operand(ctx, v, out_rank, perm, zero_grid=grid) for v in node.inputs]
    result = node.outputs[0]
    if options is not None and hasattr(options, "fusedActivationFunction"):
        options.fusedActivationFunction, result = take_fused_activation(ctx, result)
    out = ctx.define(result, perm)
    params = ctx.qparams(result)
    if hasattr(options, "potScaleInt16") and params is not None and params.bits == 16:
        options.potScaleInt16 = False  # 16x8 ADD/SUB with calibrated, not power-of-two, scales
    ctx.emit(op, inputs, [out], options)


def _check_binary(node: ir.Node) -> str | None:
    """exactly 2 inputs (numpy broadcasting)."""
    if len(node.inputs) != 2:
        return "expects exactly 2 inputs"
    return None


@visitor("Add", "Sub", "Mul", check=_check_binary, int8=True, dtypes=NUMERIC)
@visitor("Div", check=_check_binary)
def lower_arithmetic(node: ir.Node, ctx: LoweringContext) -> None:
    op, options_cls = _BINARY[node.op_type]
    lower_binary(ctx, node, op, options_cls() if options_cls else None)


@visitor("PRelu", int8=True)
def lower_prelu(node: ir.Node, ctx: LoweringContext) -> None:
    x, slope = node.inputs
    perm = ctx.perm(x) if ctx.const(x) is None else layout.identity(len(ctx.shape(x)))
    out_rank = len(ctx.shape(node.outputs[0]))
    alpha = operand(ctx, slope, out_rank, perm)
    # TFLite's PRELU wants alpha without the leading broadcast axes (e.g. [1,1,C] for NHWC).
    if ctx.graph.is_const(alpha):
        shape = list(ctx.graph.shape(alpha))
        while len(shape) > 1 and shape[0] == 1:
            shape.pop(0)
        qc = ctx.quantized_const(slope)
        if qc is not None:
            data, dtype, quant = quantized.constant_in_layout(qc, out_rank, perm)
            quant.quantizedDimension = max(0, quant.quantizedDimension - (out_rank - len(shape)))
            alpha = ctx.graph.add_tensor(slope.name, shape, dtype, data=data, quantization=quant)
        else:
            data = ctx.const(slope).astype(np.float32)
            data = layout.const_in_layout(data, out_rank, perm).reshape(shape)
            alpha = ctx.const_tensor(data, slope.name)
    out = ctx.define(node.outputs[0], perm)
    ctx.emit("PRELU", [ctx.tensor(x, perm), alpha], [out])


# Pow with a constant exponent these values take: x**2, x**3 (GPT-2's gelu_new, ALBERT) and x**4 are
# MUL chains, x**0.5 is SQRT; XNNPACK runs both (within float rounding of pow), where XNNPACK leaves
# TFLite's POW to LiteRT's own kernels (measured: the pow_general_const case's POW is not delegated).
_POW_BY_MUL = (2.0, 3.0, 4.0)


def _pow_exponent(node: ir.Node) -> float | None:
    """The exponent when it is one constant value (a scalar or a tensor of equal values), else None."""
    y = const_input(node, 1)
    if y is None or y.size == 0 or not np.all(y == y.flat[0]):
        return None
    return float(y.flat[0])


def _check_pow(node: ir.Node) -> str | None:
    """float32 base; a constant exponent 2, 3 or 4 becomes MULs and 0.5 SQRT (XNNPACK runs both), any other exponent (constant or run-time, float32) POW on LiteRT's kernels."""
    if len(node.inputs) != 2:
        return "expects exactly 2 inputs"
    y = const_input(node, 1)
    if y is not None and not np.issubdtype(y.dtype, np.floating) and not np.issubdtype(y.dtype, np.integer):
        return f"exponent of type {y.dtype}; a numeric constant or a float32 tensor is lowered"
    return None


@visitor("Pow", check=_check_pow)
def lower_pow(node: ir.Node, ctx: LoweringContext) -> None:
    x, y = node.inputs
    exponent = _pow_exponent(node)
    same_shape = tuple(ctx.shape(x)) == tuple(ctx.shape(node.outputs[0]))
    if ctx.const(x) is None and same_shape and exponent in (*_POW_BY_MUL, 0.5):
        perm = ctx.perm(x)
        src = ctx.tensor(x, perm)
        out = ctx.define(node.outputs[0], perm)
        if exponent == 0.5:
            ctx.emit("SQRT", [src], [out])
        else:
            # x*x, (x*x)*x, (x*x)*(x*x)
            square = out if exponent == 2.0 else ctx.temp_like(src, hint="square")
            ctx.emit("MUL", [src, src], [square], schema.MulOptionsT())
            if exponent != 2.0:
                ctx.emit("MUL", [square, src if exponent == 3.0 else square], [out], schema.MulOptionsT())
        return
    perm = output_layout(ctx, node)
    out_rank = len(perm)
    base = operand(ctx, x, out_rank, perm)
    y_const = ctx.const(y)
    if y_const is not None:  # an integer exponent constant becomes float32, POW's one element type here
        power = ctx.const_tensor(layout.const_in_layout(y_const.astype(np.float32), out_rank, perm), y.name)
    else:
        power = operand(ctx, y, out_rank, perm)
    ctx.emit("POW", [base, power], [ctx.define(node.outputs[0], perm)])
