"""Unary elementwise ops and activations; each keeps its input's layout.

TFLite has no HardSigmoid and only fixed-range clamps (RELU, RELU6, RELU_N1_TO_1), so
other ranges become MAXIMUM/MINIMUM with scalar constants. A clamp right after a conv, FC,
pool or add is folded into that op's fused_activation_function instead.
"""

from __future__ import annotations

import math

import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.lower.tflite.common import attr, const_input, first_problem, require_const
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.registry import ANY_DTYPE, visitor

_UNARY = {
    "Relu": "RELU",
    "Sigmoid": "LOGISTIC",
    "Tanh": "TANH",
    "HardSwish": "HARD_SWISH",
    "Abs": "ABS",
    "Neg": "NEG",
    "Exp": "EXP",
    "Sqrt": "SQRT",
    "Elu": "ELU",
}

# Clamp ranges TFLite has a builtin (and XNNPACK a clamp) for.
_FIXED_CLAMPS = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, math.inf): "RELU"}


_FUSED_CODES = {
    "RELU": schema.ActivationFunctionType.RELU,
    "RELU6": schema.ActivationFunctionType.RELU6,
    "RELU_N1_TO_1": schema.ActivationFunctionType.RELU_N1_TO_1,
}


def take_fused_activation(ctx: LoweringContext, value: ir.Value) -> tuple[int, ir.Value]:
    """Fold `value`'s sole consumer into the producing op when it is a clamp TFLite fuses.

    Returns (fused_activation_function, the value the op now produces). The consumer is
    claimed, so the walk skips it; its own check already ran (Clip bounds are constants).
    """
    none = schema.ActivationFunctionType.NONE
    if ctx.is_quantization_point(value):  # the QDQ graph rounds there: fusing would skip it
        return none, value
    consumer = ctx.sole_consumer(value)
    if consumer is None or consumer.domain not in ("", "ai.onnx") or consumer.inputs[0] is not value:
        return none, value
    if consumer.op_type == "Relu":
        builtin = "RELU"
    elif consumer.op_type == "Clip":
        builtin = _FIXED_CLAMPS.get(clip_bounds(consumer))
    else:
        return none, value
    if builtin is None:
        return none, value
    ctx.claim(consumer)
    return _FUSED_CODES[builtin], consumer.outputs[0]


def _unary(ctx: LoweringContext, node: ir.Node, op: str, options=None) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    out = ctx.define(node.outputs[0], perm)
    ctx.emit(op, [ctx.tensor(x, perm)], [out], options)


# Unary ops with an int8 TFLite kernel; the others run in float between DEQUANTIZE/QUANTIZE.
_INT8_UNARY = ("Relu", "Sigmoid", "Tanh", "HardSwish")


@visitor(*_INT8_UNARY, int8=True)
@visitor(*(op for op in _UNARY if op not in _INT8_UNARY))
def lower_unary(node: ir.Node, ctx: LoweringContext) -> None:
    if node.op_type == "Relu" and _clamp_by_saturation(ctx, node, 0.0, math.inf):
        return
    alpha = float(attr(node, "alpha", 1.0)) if node.op_type == "Elu" else 1.0
    if abs(alpha - 1.0) > 1e-7:
        _elu_with_alpha(ctx, node, alpha)
        return
    _unary(ctx, node, _UNARY[node.op_type])


def _elu_with_alpha(ctx: LoweringContext, node: ir.Node, alpha: float) -> None:
    """TFLite's ELU has alpha 1: elu_a(x) = elu(x) + (a - 1) * min(elu(x), 0), four ops XNNPACK runs."""
    x = node.inputs[0]
    perm = ctx.perm(x)
    src = ctx.tensor(x, perm)
    elu = ctx.temp_like(src, hint="elu")
    ctx.emit("ELU", [src], [elu])
    negative = ctx.temp_like(src, hint="negative_part")
    ctx.emit("MINIMUM", [elu, ctx.float32(0.0, "zero")], [negative])
    scaled = ctx.temp_like(src, hint="scaled_negative_part")
    ctx.emit("MUL", [negative, ctx.float32(alpha - 1.0, "alpha_minus_1")], [scaled], schema.MulOptionsT())
    out = ctx.define(node.outputs[0], perm)
    ctx.emit("ADD", [elu, scaled], [out], schema.AddOptionsT())


def _clamp_by_saturation(ctx: LoweringContext, node: ir.Node, lo: float, hi: float) -> bool:
    """Lower an int8 clamp as a plain requantization when the output grid holds no value
    outside [lo, hi]: rounding onto that grid saturates exactly where the clamp would cut
    (for a ReLU, zero point -128 puts real 0 at the grid's bottom). XNNPACK takes the
    requantizing QUANTIZE; it leaves int8 RELU/RELU6/MAXIMUM/MINIMUM to the CPU kernels.
    Returns False (nothing emitted) when the clamp does cut inside the grid."""
    x, y = node.inputs[0], node.outputs[0]
    p_in, p_out = ctx.qparams(x), ctx.qparams(y)
    if not ctx.integer or p_in is None or p_out is None:
        return False
    bottom = (-128 - p_out.zero_point) * p_out.scale
    top = (127 - p_out.zero_point) * p_out.scale
    slack = 1e-6 * p_out.scale
    if bottom < lo - slack or top > hi + slack:
        return False
    perm = ctx.perm(x)
    if p_in == p_out:
        ctx.alias(y, x)
    else:
        out = ctx.define(y, perm)
        ctx.emit("QUANTIZE", [ctx.tensor(x, perm)], [out])
    return True


@visitor("LeakyRelu", int8=True)
def lower_leaky_relu(node: ir.Node, ctx: LoweringContext) -> None:
    _unary(ctx, node, "LEAKY_RELU", schema.LeakyReluOptionsT(alpha=float(attr(node, "alpha", 0.01))))


def _check_gelu(node: ir.Node) -> str | None:
    """approximate is 'none' or 'tanh'."""
    approximate = attr(node, "approximate", "none")
    if approximate not in ("none", "tanh"):
        return f"approximate='{approximate}'; expected 'none' or 'tanh'"
    return None


@visitor("Gelu", check=_check_gelu)
def lower_gelu(node: ir.Node, ctx: LoweringContext) -> None:
    approximate = attr(node, "approximate", "none") == "tanh"
    _unary(ctx, node, "GELU", schema.GeluOptionsT(approximate=approximate))


def clip_bounds(node: ir.Node) -> tuple[float, float]:
    """Clip's (min, max): inputs since opset 11, attributes before; absent means unbounded."""
    if "min" in node.attributes or "max" in node.attributes:
        return float(attr(node, "min", -math.inf)), float(attr(node, "max", math.inf))
    lo, hi = const_input(node, 1), const_input(node, 2)
    return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))


def _check_clip(node: ir.Node) -> str | None:
    """min and max are constants (inputs since opset 11, attributes before)."""
    return first_problem(require_const(node, 1, "min"), require_const(node, 2, "max"))


def clamp(ctx: LoweringContext, src: int, out: int, lo: float, hi: float) -> None:
    """out = min(max(src, lo), hi) with the fewest TFLite ops XNNPACK runs.

    RELU_0_TO_1 exists, but XNNPACK leaves it to the CPU kernels: [0, 1] is MAXIMUM, MINIMUM.
    In int8 the RELU family rescales to the output's parameters itself; MAXIMUM/MINIMUM do
    not, so they clamp on the input's grid (the bounds quantized onto it) and a QUANTIZE
    moves the result to the output's grid when the two differ.
    """
    fixed = _FIXED_CLAMPS.get((lo, hi))
    if fixed is not None:
        ctx.emit(fixed, [src], [out])
        return
    steps = []
    if lo > -math.inf:
        steps.append(("MAXIMUM", lo))
    if hi < math.inf:
        steps.append(("MINIMUM", hi))
    regrid = ctx.tensor_params(src) != ctx.tensor_params(out)
    if not steps:  # an unbounded Clip is a copy
        if regrid:
            ctx.emit("QUANTIZE", [src], [out])
        else:
            ctx.emit("RESHAPE", [src, ctx.int32(ctx.graph.shape(out))], [out])
        return
    for i, (op, bound) in enumerate(steps):
        last = i == len(steps) - 1 and not regrid
        dst = out if last else ctx.temp_like(src, ctx.graph.shape(out), hint=op.lower())
        ctx.emit(op, [src, ctx.scalar_like(bound, src, "bound")], [dst])
        src = dst
    if regrid:
        ctx.emit("QUANTIZE", [src], [out])


@visitor("Clip", check=_check_clip, int8=True)
def lower_clip(node: ir.Node, ctx: LoweringContext) -> None:
    lo, hi = clip_bounds(node)
    if _clamp_by_saturation(ctx, node, lo, hi):
        return
    x = node.inputs[0]
    perm = ctx.perm(x)
    out = ctx.define(node.outputs[0], perm)
    clamp(ctx, ctx.tensor(x, perm), out, lo, hi)


@visitor("HardSigmoid")
def lower_hard_sigmoid(node: ir.Node, ctx: LoweringContext) -> None:
    # max(0, min(1, alpha * x + beta)): TFLite has no HardSigmoid builtin.
    x = node.inputs[0]
    perm = ctx.perm(x)
    out = ctx.define(node.outputs[0], perm)
    shape = ctx.graph.shape(out)
    scaled = ctx.temp(shape, hint="scaled")
    ctx.emit("MUL", [ctx.tensor(x, perm), ctx.float32(attr(node, "alpha", 0.2), "alpha")], [scaled],
             schema.MulOptionsT())
    shifted = ctx.temp(shape, hint="shifted")
    ctx.emit("ADD", [scaled, ctx.float32(attr(node, "beta", 0.5), "beta")], [shifted], schema.AddOptionsT())
    clamp(ctx, shifted, out, 0.0, 1.0)


def _check_identity(node: ir.Node) -> str | None:
    """Dropout: inference mode (training off, mask output unused)."""
    if node.op_type != "Dropout":
        return None
    training = const_input(node, 2)
    if training is not None and bool(training):
        return "Dropout in training mode; export the model in eval mode"
    if len(node.outputs) > 1 and node.outputs[1] is not None and node.outputs[1].uses():
        return "Dropout's mask output is used; only inference-mode Dropout is lowered"
    return None


@visitor("Identity", "Dropout", check=_check_identity, int8=True, dtypes=ANY_DTYPE)
def lower_identity(node: ir.Node, ctx: LoweringContext) -> None:
    # Inference-mode Dropout is the identity.
    ctx.alias(node.outputs[0], node.inputs[0])


# erf(x) = x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (erf is +-1 to float precision past
# that): the rational approximation of Eigen's and XLA's float erf, a few ulp accurate.
# TFLite has no ERF builtin; these are MUL/ADD/DIV/MINIMUM/MAXIMUM, all delegated to XNNPACK.
# (Erf inside the exact GELU pattern never gets here: that pattern becomes one GELU.)
@visitor("Reciprocal")
def lower_reciprocal(node: ir.Node, ctx: LoweringContext) -> None:
    """DIV(1, x): TFLite has no RECIPROCAL; XNNPACK runs DIV, and it rounds as onnxruntime's 1/x does
    (T5's RMSNorm exports rsqrt as Sqrt then Reciprocal)."""
    x = node.inputs[0]
    perm = ctx.perm(x)
    out = ctx.define(node.outputs[0], perm)
    ctx.emit("DIV", [ctx.float32(1.0, "one"), ctx.tensor(x, perm)], [out], schema.DivOptionsT())


_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)


@visitor("Erf")
def lower_erf(node: ir.Node, ctx: LoweringContext) -> None:
    x = node.inputs[0]
    perm = ctx.perm(x)
    out = ctx.define(node.outputs[0], perm)
    shape = ctx.graph.shape(out)

    def op(name, a, b, hint):
        dst = ctx.temp(shape, hint=hint)
        options = {"MUL": schema.MulOptionsT, "ADD": schema.AddOptionsT, "DIV": schema.DivOptionsT}.get(name)
        ctx.emit(name, [a, b], [dst], options() if options else None)
        return dst

    lo = op("MAXIMUM", ctx.tensor(x, perm), ctx.float32(-4.0, "erf_lo"), "clamped_lo")
    xc = op("MINIMUM", lo, ctx.float32(4.0, "erf_hi"), "clamped")
    x2 = op("MUL", xc, xc, "x2")

    def horner(coefficients, hint):
        acc = op("MUL", x2, ctx.float32(coefficients[0], f"{hint}0"), f"{hint}_mul0")
        for i, c in enumerate(coefficients[1:], start=1):
            acc = op("ADD", acc, ctx.float32(c, f"{hint}{i}"), f"{hint}_add{i}")
            if i < len(coefficients) - 1:
                acc = op("MUL", acc, x2, f"{hint}_mul{i}")
        return acc

    p = op("MUL", horner(_ERF_P, "p"), xc, "p_x")
    q = horner(_ERF_Q, "q")
    ctx.emit("DIV", [p, q], [out], schema.DivOptionsT())
