"""Integer compute for a QDQ graph in Relax: the "rewrite" stage of an int8/int4 TVM lowering.

TVM's ONNX frontend imports a QDQ graph (passes/quantize.py's form) as float compute between
relax.quantize / relax.dequantize calls. This pass turns each

    quantize(clamp?(add?(conv2d|matmul(dequantize(x_q), dequantize(W_q)), dequantize(b_q))))

into integer compute on the int8 tensors themselves:

    x_q --pad with z_x--> conv2d/matmul(int8, int8, out_dtype=int32)
        --requantize: + (b - z_x * sum(W_q[c])), * s_x*s_w[c]/s_y (float32), round half to even,
                      + z_y, clamp to the fused activation's bounds--> int8

Zero points are handled exactly and the product stays int8 x int8: the activation zero point
z_x is what zero padding must insert (an explicit pad with z_x, then an unpadded conv), and
its share of the sum, z_x * sum(W_q[c]), is a compile-time constant folded into the int32
bias. Weights are symmetric (zero point 0). A fused Relu/ReLU6/Clip becomes the clamp bounds.
A matmul of two activations (attention's Q.K^T and P.V) subtracts its zero points' row and
column sums in int32. A mean (global average pooling) is an int32 sum, requantized.
Ops that only move or select values (reshape, transpose, slice, concat, max pooling) run on the
int8 tensor when their input and output share quantization parameters, which the quantize pass
ensures.

Everything else between a dequantize and a quantize (add, mul, sigmoid, softmax, layer norm,
average pooling, ...) stays float: TVM's FuseOps makes each such island one elementwise kernel
from int8 to int8. `integer_summary` counts what is integer and what is float.

On a target with an integer dot-product instruction (int8_dot.dot_product_of: AVX-512 VNNI,
ARM +dotprod), a dense conv (groups=1) takes int8_dot's form instead: packed activations (for
VNNI uint8, x_q + 128) x int8 weights (packed at compile time) -> int32, any offset folded
into the same per-channel bias constant, so the integers are the same; the requantize reads
the packed accumulator. On CPUs every conv runs channels-last (NHWC data; HWIO weights, or
int8_dot's packing), emitted between two transposes; transposes.py then cancels those
between consecutive convs, so the int8 tensors stay NHWC from the first conv to the last.

Rounding is half to even throughout, as in ONNX QuantizeLinear and so in onnxruntime's QDQ
reference: the requantize kernel uses nearbyint, and TVM 0.27 lowers relax.quantize's tir
`round` to nearbyint as well (llvm.nearbyint on CPUs, nearbyintf on CUDA).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from edgec.lower.tvm import int8_dot
from edgec.lower.tvm.qdq_kernels import fold_bias, quantized_bound, requantize
from edgec.lower.tvm.transposes import sink_transposes

_INTEGER_DTYPES = ("int8",)  # activations and weights (int4 weights are stored as int8 values)
_FLOAT_DTYPES = ("float32",)
# Ops that move or select values without arithmetic (max pooling selects): on int8 data with
# shared quantization parameters they compute exactly what the float op does.
_DATA_MOVEMENT_OPS = ("relax.reshape", "relax.permute_dims", "relax.squeeze", "relax.expand_dims",
                      "relax.flatten", "relax.strided_slice", "relax.nn.max_pool2d", "relax.concat")
# Relax constants: relax.const builds a tvm.ir GenericConst (its .value is a tvm Tensor).
_CONSTANT = tvm.ir.expr.GenericConst
# An int8 x int8 conv whose output sums at most this many products runs in float32: each
# product is at most 128 * 128 = 2^14 in magnitude, so every partial sum, in any order, is an
# integer below 2^24 and exact in float32. Depthwise 3x3 convs sum 9 products, MobileNet v2's
# 1x1 convs up to 960.
_EXACT_FLOAT_TERMS = 2 ** 24 // 2 ** 14 - 1
# A bias whose scale is within this of s_x * s_w[c] is taken as is (the quantizer rounds the
# product to float32); otherwise it is rescaled to the accumulator's scale.
_BIAS_SCALE_RTOL = 1e-6


def legalize_qdq() -> tvm.transform.Pass:
    """The Relax pass: integer compute for QDQ patterns (see the module docstring)."""

    @tvm.transform.module_pass(opt_level=0, name="edgec.LegalizeQDQ")
    def transform(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        target = tvm.target.Target.current(allow_none=True)
        dot = int8_dot.dot_product_of(target)
        cpu = target is not None and target.kind.name == "llvm"
        mod = _QDQRewriter(mod, dot_product=dot, channels_last=cpu).transform()
        if cpu:  # the transposes between consecutive channels-last convs cancel
            mod = sink_transposes(mod)
        # The float convs and weight dequantizes the rewrite bypassed are now unused.
        return relax.transform.DeadCodeElimination()(mod)

    return transform


def integer_summary(mod: tvm.IRModule) -> dict:
    """What a rewritten module computes in integer and what it leaves in float.

    integer_convs / integer_matmuls: relax conv2d / matmul calls on int8 operands with an int32
    result; float_ops: histogram of Relax operators that still produce float tensors (the
    float islands between a dequantize and a quantize); dequantize / quantize: how many
    island borders there are.
    """
    summary = {"integer_convs": 0, "integer_matmuls": 0, "float_ops": {}, "dequantize": 0, "quantize": 0}

    def visit(expr):
        if not isinstance(expr, relax.Call):
            return
        if _is_op(expr, "relax.call_tir") and _is_dot_conv(mod, expr.args[0]):
            summary["integer_convs"] += 1
        elif isinstance(expr.op, tvm.ir.Op):
            name = expr.op.name
            if name in ("relax.dequantize", "relax.quantize"):
                summary[name.split(".")[-1]] += 1
            elif name in ("relax.nn.conv2d", "relax.matmul") and _is_int8_product(expr):
                summary["integer_convs" if name == "relax.nn.conv2d" else "integer_matmuls"] += 1
            elif _dtype(expr) in _FLOAT_DTYPES:
                summary["float_ops"][name] = summary["float_ops"].get(name, 0) + 1

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    summary["float_ops"] = dict(sorted(summary["float_ops"].items()))
    return summary


@dataclasses.dataclass(frozen=True)
class _Activation:
    """An int8 tensor and the per-tensor parameters a dequantize reads it with."""

    data: relax.Expr
    scale: float
    zero_point: int


@dataclasses.dataclass(frozen=True)
class _Weight:
    values: np.ndarray  # int8, in the layout the float op consumed (after any permute_dims)
    scale: np.ndarray  # float32, broadcast to values.shape


@dataclasses.dataclass(frozen=True)
class _Bias:
    values: np.ndarray  # int32, flattened
    scale: np.ndarray  # float32, flattened like values
    shape: tuple[int, ...]  # as added to the product's output


@dataclasses.dataclass(frozen=True)
class _Output:
    scale: float
    zero_point: int
    dtype: str
    qmin: int
    qmax: int


@mutator
class _QDQRewriter(PyExprMutator):
    def __init__(self, mod: tvm.IRModule, dot_product: int8_dot.DotProduct | None = None,
                 channels_last: bool = False):
        super().__init__(mod)
        self.mod = mod
        self.dot_product = dot_product  # dense convs in int8_dot's packed form for this instruction
        self.channels_last = channels_last

    def transform(self) -> tvm.IRModule:
        for gvar, func in self.mod.functions_items():
            if isinstance(func, relax.Function):
                self.builder_.update_func(gvar, self.visit_expr(func))
        return self.builder_.get()

    def visit_call_(self, call: relax.Call) -> relax.Expr:  # noqa: N802 - TVM's visitor name
        call = self.visit_expr_post_order(call)
        if not _is_op(call, "relax.quantize"):
            return call
        out = _output_params(call)
        if out is None:
            return call
        for rewrite in (self._integer_compute, self._int8_data_movement):
            integer = rewrite(call.args[0], out)
            if integer is not None:
                return integer
        return call  # a float island's border: TVM's quantize already rounds half to even

    # -- matching, from the quantize back to the product ------------------------------------
    def _integer_compute(self, value: relax.Expr, out: _Output) -> relax.Expr | None:
        lo, hi, value = self._peel_clamps(value)
        for product_expr, bias in self._product_and_bias(value):
            product = self._producer(product_expr)
            if _is_op(product, "relax.nn.conv2d"):
                rewritten = self._conv2d(product, bias, lo, hi, out)
            elif _is_op(product, "relax.matmul"):
                rewritten = self._matmul(product, bias, lo, hi, out)
            elif _is_op(product, "relax.mean") and bias is None:
                rewritten = self._mean(product, lo, hi, out)
            else:
                continue
            if rewritten is not None:
                return rewritten
        return None

    def _peel_clamps(self, value: relax.Expr) -> tuple[float, float, relax.Expr]:
        """Fused Relu/ReLU6/Clip (relu, maximum/minimum with a constant, clip) as (lo, hi)."""
        clamps = []  # outermost first
        while True:
            node = self._producer(value)
            if _is_op(node, "relax.nn.relu"):
                clamps.append((0.0, np.inf))
            elif _is_op(node, "relax.maximum") or _is_op(node, "relax.minimum"):
                operand, bound = _split_scalar_constant(node)
                if operand is None:
                    break
                clamps.append((bound, np.inf) if node.op.name == "relax.maximum" else (-np.inf, bound))
                value = operand
                continue
            elif _is_op(node, "relax.clip"):
                bounds = [_prim_float(a) for a in node.args[1:3]]
                if None in bounds:
                    break
                clamps.append(tuple(bounds))
            else:
                break
            value = node.args[0]
        # A composition of clamps is the clamp between its images of -inf and +inf.
        lo, hi = -np.inf, np.inf
        for c_lo, c_hi in reversed(clamps):
            lo, hi = min(max(lo, c_lo), c_hi), min(max(hi, c_lo), c_hi)
        return lo, hi, value

    def _product_and_bias(self, value: relax.Expr):
        """(product, bias) candidates: value = product + constant bias, or value itself."""
        node = self._producer(value)
        if _is_op(node, "relax.add"):
            lhs, rhs = node.args
            for product, other in ((lhs, rhs), (rhs, lhs)):
                bias = self._constant_bias(other)
                if bias is not None:
                    yield product, bias
        yield value, None

    def _conv2d(self, conv: relax.Call, bias: _Bias | None, lo: float, hi: float,
                out: _Output) -> relax.Expr | None:
        attrs = conv.attrs
        if (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) != ("NCHW", "OIHW", "NCHW"):
            return None
        if _dtype(conv) not in _FLOAT_DTYPES:
            return None
        x, w = self._activation(conv.args[0]), self._constant_weight(conv.args[1])
        if x is None or w is None or w.values.ndim != 4:
            return None
        w_scale = _per_channel(w.scale, axis=0)
        if w_scale is None or not _bias_fits(bias, w.values.shape[0], axis=1, rank=4):
            return None
        folded = _fold(x, w.values.reshape(w.values.shape[0], -1).sum(axis=1), w_scale, bias)
        if folded is None:
            return None

        padding = [int(p) for p in attrs.padding]  # top, left, bottom, right
        if self.dot_product and int(attrs.groups) == 1:
            return self._conv2d_dot(x, w.values, w_scale, bias, padding, [int(s) for s in attrs.strides],
                                    [int(d) for d in attrs.dilation], lo, hi, out)
        return self._conv2d_int8(conv, x, w.values, w_scale, folded, padding, lo, hi, out)

    def _conv2d_int8(self, conv: relax.Call, x: _Activation, w: np.ndarray, w_scale: np.ndarray,
                     folded: np.ndarray, padding: list[int], lo: float, hi: float, out: _Output) -> relax.Expr:
        """int8 x int8 conv2d (summed in int32, or in float32 where that is exact), then
        requantize. On CPUs channels-last, between two transposes (NHWC data, HWIO weights);
        elsewhere NCHW/OIHW.

        NCHW convs vectorize over W, which has no vector width on 7x7 and 14x14 planes and
        which stride 2 turns into gathers, and their zero-point padding runs as its own scalar
        pass; channels-last they vectorize over the output channels (schedules.py). MobileNet
        v2 224, default schedules, 1 thread (`edgec analyze`, edgec bench): depthwise convs
        channels-last took x86_64-int8-vnni from 14.1 to 8.0 ms; all convs channels-last took
        the portable x86_64-int8 from 53 to 25 ms. The transposes are counted in both."""
        emit = self.builder_.emit
        nhwc = self.channels_last
        data = emit(relax.op.permute_dims(x.data, [0, 2, 3, 1])) if nhwc else x.data
        if x.zero_point != 0 and any(padding):
            # Zero in real terms is z_x in int8: pad with it, then convolve unpadded.
            top, left, bottom, right = padding
            spatial = [top, bottom, left, right]
            data = emit(relax.op.nn.pad(data, [0, 0, *spatial, 0, 0] if nhwc else [0, 0, 0, 0, *spatial],
                                        "constant", float(x.zero_point)))
            padding = [0, 0, 0, 0]
        weight = np.ascontiguousarray(w.transpose(2, 3, 1, 0)) if nhwc else w  # OIHW -> HWIO
        layout, kernel_layout = ("NHWC", "HWIO") if nhwc else ("NCHW", "OIHW")
        attrs = conv.attrs
        # Summed in float32 where that is exact (see _EXACT_FLOAT_TERMS): float FMAs instead of
        # x86's slow 32-bit integer multiplies, the same integers.
        exact_in_float = nhwc and w[0].size <= _EXACT_FLOAT_TERMS
        weights = relax.const(weight.astype(np.float32), "float32") if exact_in_float else relax.const(weight, "int8")
        acc = emit(relax.op.nn.conv2d(
            data, weights, strides=attrs.strides, padding=padding, dilation=attrs.dilation,
            groups=attrs.groups, data_layout=layout, kernel_layout=kernel_layout, out_layout=layout,
            out_dtype="float32" if exact_in_float else "int32"))
        if exact_in_float:
            acc = emit(relax.op.astype(acc, "int32"))
        requantized = self._requantize(acc, folded, x.scale * w_scale, lo, hi, out, axis=3 if nhwc else 1)
        return relax.op.permute_dims(emit(requantized), [0, 3, 1, 2]) if nhwc else requantized

    def _conv2d_dot(self, x: _Activation, w: np.ndarray, w_scale: np.ndarray, bias: _Bias | None,
                    padding: list[int], strides: list[int], dilation: list[int], lo: float, hi: float,
                    out: _Output) -> relax.Expr | None:
        """int8_dot's form, channels-last: (x_q + offset) x int8 W; -(z_x + offset) sum W[o] in the bias."""
        dot = self.dot_product
        shifted = _Activation(x.data, x.scale, x.zero_point + dot.offset)
        folded = _fold(shifted, w.reshape(w.shape[0], -1).sum(axis=1), w_scale, bias)
        if folded is None:
            return None
        emit = self.builder_.emit
        data = emit(self.builder_.call_te(
            int8_dot.pack_activation, emit(relax.op.permute_dims(x.data, [0, 2, 3, 1])), padding=padding,
            zero_point=x.zero_point, offset=dot.offset, dtype=dot.activation_dtype, primfunc_name_hint="pack_dot"))
        multiplier, qmin, qmax = self._requantize_params(x.scale * w_scale, lo, hi, out)
        conv = self.builder_.call_te(
            int8_dot.conv2d_requantize, data, relax.const(int8_dot.pack_weight(w, dot.lanes), "int8"),
            relax.const(folded, "int32"), relax.const(multiplier, "float32"),
            channels=int(w.shape[0]), strides=strides, dilation=dilation, zero_point=out.zero_point, qmin=qmin,
            qmax=qmax, out_dtype=out.dtype, primfunc_name_hint=int8_dot.CONV_NAME)
        # Channels-last between two transposes, like _conv2d_int8's on CPUs (the only targets
        # with a dot-product instruction): sink_transposes removes those between two convs.
        return relax.op.permute_dims(emit(conv), [0, 3, 1, 2])

    def _matmul(self, matmul: relax.Call, bias: _Bias | None, lo: float, hi: float,
                out: _Output) -> relax.Expr | None:
        if _dtype(matmul) not in _FLOAT_DTYPES:
            return None
        a = self._activation(matmul.args[0])
        if a is None or len(static_shape(matmul) or ()) < 2:
            return None
        w = self._constant_weight(matmul.args[1])
        if w is not None:
            return self._matmul_weight(a, w, bias, lo, hi, out, rank=len(static_shape(matmul)))
        b = self._activation(matmul.args[1])
        if b is not None and bias is None and min(len(static_shape(e) or ()) for e in (a.data, b.data)) >= 2:
            return self._matmul_activations(a, b, lo, hi, out)
        return None

    def _matmul_weight(self, x: _Activation, w: _Weight, bias: _Bias | None, lo: float, hi: float,
                       out: _Output, rank: int) -> relax.Expr | None:
        if w.values.ndim != 2:
            return None
        w_scale = _per_channel(w.scale, axis=1)  # [K, N]: one scale per output column
        if w_scale is None or not _bias_fits(bias, w.values.shape[1], axis=rank - 1, rank=rank):
            return None
        if self.dot_product and rank == 2:
            return self._matmul_dot(x, w, w_scale, bias, lo, hi, out)
        folded = _fold(x, w.values.sum(axis=0), w_scale, bias)
        if folded is None:
            return None
        acc = self.builder_.emit(relax.op.matmul(x.data, relax.const(w.values, "int8"), out_dtype="int32"))
        return self._requantize(acc, folded, x.scale * w_scale, lo, hi, out, axis=rank - 1)

    def _matmul_dot(self, x: _Activation, w: _Weight, w_scale: np.ndarray, bias: _Bias | None, lo: float,
                    hi: float, out: _Output) -> relax.Expr | None:
        """[M, K] x [K, N] as the 1x1 conv [M, K, 1, 1] * [N, K, 1, 1] on the dot-product
        instruction (a classifier's Gemm: MobileNet v2's 1280 x 1000 measured 0.77 ms portable)."""
        m, k = (int(d) for d in static_shape(x.data))
        n = int(w.values.shape[1])
        image = self.builder_.emit(relax.op.reshape(x.data, [m, k, 1, 1]))
        conv = self._conv2d_dot(_Activation(image, x.scale, x.zero_point), w.values.T.reshape(n, k, 1, 1), w_scale,
                                bias, [0, 0, 0, 0], [1, 1], [1, 1], lo, hi, out)
        if conv is None:
            return None
        return relax.op.reshape(self.builder_.emit(conv), [m, n])

    def _matmul_activations(self, a: _Activation, b: _Activation, lo: float, hi: float,
                            out: _Output) -> relax.Expr:
        """sum_k (a - za)(b - zb) = a.b - zb*sum_k a - za*sum_k b + K*za*zb, all int32."""
        emit = self.builder_.emit
        acc = emit(relax.op.matmul(a.data, b.data, out_dtype="int32"))
        if b.zero_point:
            row_sums = emit(relax.op.sum(relax.op.astype(a.data, "int32"), axis=[-1], keepdims=True))
            acc = emit(relax.op.subtract(acc, relax.op.multiply(row_sums, _int32(b.zero_point))))
        if a.zero_point:
            col_sums = emit(relax.op.sum(relax.op.astype(b.data, "int32"), axis=[-2], keepdims=True))
            acc = emit(relax.op.subtract(acc, relax.op.multiply(col_sums, _int32(a.zero_point))))
        depth = int(static_shape(a.data)[-1])
        constant = np.array([depth * a.zero_point * b.zero_point], np.int32)
        return self._requantize(acc, constant, np.array([a.scale * b.scale]), lo, hi, out, axis=0)

    def _mean(self, mean: relax.Call, lo: float, hi: float, out: _Output) -> relax.Expr | None:
        """Global average pooling: an int32 sum of (x - z_x), requantized with s_x / (n * s_y)."""
        x = self._activation(mean.args[0])
        shape = static_shape(mean.args[0])
        if x is None or shape is None or _dtype(mean) not in _FLOAT_DTYPES:
            return None
        axes = range(len(shape)) if mean.attrs.axis is None else [int(a) % len(shape) for a in mean.attrs.axis]
        count = int(np.prod([shape[a] for a in axes]))
        total = self.builder_.emit(relax.op.sum(
            relax.op.astype(x.data, "int32"), axis=mean.attrs.axis, keepdims=bool(mean.attrs.keepdims)))
        zero_point_share = np.array([-count * x.zero_point], np.int32)
        return self._requantize(total, zero_point_share, np.array([x.scale / count]), lo, hi, out, axis=0)

    @staticmethod
    def _requantize_params(acc_scale: np.ndarray, lo: float, hi: float, out: _Output):
        """float32 multiplier s_acc / s_y and the clamp bounds of a fused activation."""
        multiplier = (np.asarray(acc_scale, np.float64) / np.float64(out.scale)).astype(np.float32)
        qmin = max(out.qmin, quantized_bound(lo, out.scale, out.zero_point, out.qmin, out.qmax))
        qmax = min(out.qmax, quantized_bound(hi, out.scale, out.zero_point, out.qmin, out.qmax))
        return multiplier, qmin, qmax

    def _requantize(self, acc: relax.Expr, folded_bias: np.ndarray, acc_scale: np.ndarray,
                    lo: float, hi: float, out: _Output, axis: int) -> relax.Expr:
        multiplier, qmin, qmax = self._requantize_params(acc_scale, lo, hi, out)
        return self.builder_.call_te(
            requantize, acc, relax.const(folded_bias, "int32"), relax.const(multiplier, "float32"),
            axis=axis, zero_point=out.zero_point, qmin=qmin, qmax=qmax, out_dtype=out.dtype,
            primfunc_name_hint="requantize")

    def _int8_data_movement(self, value: relax.Expr, out: _Output) -> relax.Expr | None:
        """An op that only moves or selects values, run on the int8 tensor itself.

        quantize(op(dequantize(x_q))) with the same scale and zero point on both sides is
        op(x_q) exactly when op commutes with the (monotonic, elementwise) dequantization:
        reshapes, transposes, slices, max pooling, concatenation. The quantize pass gives
        these ops their input's parameters, as TFLite's int8 kernels require.
        """
        node = self._producer(value)
        if node is None or not isinstance(node.op, tvm.ir.Op) or node.op.name not in _DATA_MOVEMENT_OPS:
            return None
        if node.op.name == "relax.concat":
            parts = self.lookup_binding(node.args[0]) if isinstance(node.args[0], relax.Var) else node.args[0]
            if not isinstance(parts, relax.Tuple):
                return None
            operands = [self._activation(p) for p in parts.fields]
            if not all(o is not None and _same_params(o, out) for o in operands):
                return None
            return relax.Call(node.op, [relax.Tuple([o.data for o in operands])], node.attrs)
        x = self._activation(node.args[0])
        if x is None or not _same_params(x, out) or out.dtype != _dtype(x.data):
            return None
        return relax.Call(node.op, [x.data, *node.args[1:]], node.attrs)

    # -- operands ----------------------------------------------------------------------------
    def _producer(self, expr: relax.Expr) -> relax.Call | None:
        """The call a variable is bound to (through plain var-to-var aliases)."""
        seen = 0
        while isinstance(expr, relax.Var) and seen < 16:
            bound = self.lookup_binding(expr)
            if bound is None:
                return None
            expr, seen = bound, seen + 1
        return expr if isinstance(expr, relax.Call) else None

    def _constant(self, expr: relax.Expr) -> np.ndarray | None:
        if isinstance(expr, relax.Var):
            expr = self.lookup_binding(expr)
        return expr.value.numpy() if isinstance(expr, _CONSTANT) else None

    def _activation(self, expr: relax.Expr) -> _Activation | None:
        node = self._producer(expr)
        if not _is_op(node, "relax.dequantize") or _dtype(node) not in _FLOAT_DTYPES:
            return None
        data = node.args[0]
        if _dtype(data) not in _INTEGER_DTYPES or isinstance(data, _CONSTANT):
            return None
        scale, zero_point = self._constant(node.args[1]), self._constant(node.args[2])
        if scale is None or zero_point is None or scale.size != 1 or zero_point.size != 1:
            return None  # per-channel activations have no integer kernel here
        return _Activation(data, float(scale.reshape(())), int(zero_point.reshape(())))

    def _constant_weight(self, expr: relax.Expr) -> _Weight | None:
        node = self._producer(expr) if isinstance(expr, relax.Var) else expr
        if _is_op(node, "relax.permute_dims"):
            inner = self._constant_weight(node.args[0])
            if inner is None:
                return None
            axes = None if node.attrs.axes is None else [int(a) for a in node.attrs.axes]
            return _Weight(np.transpose(inner.values, axes), np.transpose(inner.scale, axes))
        if not _is_op(node, "relax.dequantize"):
            return None
        values, scale, zero_point = (self._constant(a) for a in node.args)
        if values is None or scale is None or zero_point is None or values.dtype.name not in _INTEGER_DTYPES:
            return None
        if np.any(zero_point != 0):
            return None  # asymmetric weights would need a per-position activation sum
        scale = _broadcast_along(scale.astype(np.float32), int(node.attrs.axis), values.ndim)
        return _Weight(values, np.broadcast_to(scale, values.shape))

    def _constant_bias(self, expr: relax.Expr) -> _Bias | None:
        shape = static_shape(expr)
        node = self._producer(expr) if isinstance(expr, relax.Var) else expr
        while _is_op(node, "relax.reshape") or _is_op(node, "relax.expand_dims"):
            node = self._producer(node.args[0]) if isinstance(node.args[0], relax.Var) else node.args[0]
        if shape is None or not _is_op(node, "relax.dequantize"):
            return None
        values, scale, zero_point = (self._constant(a) for a in node.args)
        if values is None or scale is None or zero_point is None or values.dtype != np.int32:
            return None
        if np.any(zero_point != 0):
            return None
        scale = np.broadcast_to(_broadcast_along(scale.astype(np.float32), int(node.attrs.axis), values.ndim),
                                values.shape)
        return _Bias(values.reshape(-1), scale.reshape(-1), tuple(shape))


def _fold(x: _Activation, weight_sums: np.ndarray, w_scale: np.ndarray, bias: _Bias | None) -> np.ndarray | None:
    acc_scale = np.float64(x.scale) * w_scale.astype(np.float64)
    rescale = None
    if bias is not None:
        ratio = bias.scale.astype(np.float64) / acc_scale
        if not np.allclose(ratio, 1.0, rtol=_BIAS_SCALE_RTOL, atol=0):
            rescale = ratio
    try:
        return fold_bias(weight_sums, x.zero_point, None if bias is None else bias.values, rescale)
    except OverflowError:
        return None


def _per_channel(scale: np.ndarray, axis: int) -> np.ndarray | None:
    """The one scale per index along `axis`, or None if the scale varies along another axis."""
    per_channel = np.moveaxis(scale, axis, 0).reshape(scale.shape[axis], -1)
    if not np.all(per_channel == per_channel[:, :1]):
        return None
    return per_channel[:, 0].astype(np.float32)


def _bias_fits(bias: _Bias | None, channels: int, axis: int, rank: int) -> bool:
    """True if the bias adds one value per output channel (along `axis` of a rank-`rank` output)."""
    if bias is None:
        return True
    shape = (1,) * (rank - len(bias.shape)) + bias.shape
    others = [d for i, d in enumerate(shape) if i != axis]
    return len(shape) == rank and all(d == 1 for d in others) and shape[axis] == channels == bias.values.size


def _broadcast_along(scale: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    if scale.size == 1:
        return scale.reshape((1,) * ndim)
    shape = [1] * ndim
    shape[axis] = -1
    return scale.reshape(shape)


def _output_params(quantize: relax.Call) -> _Output | None:
    scale, zero_point = quantize.args[1], quantize.args[2]
    if not (isinstance(scale, _CONSTANT) and isinstance(zero_point, _CONSTANT)):
        return None
    scale, zero_point = scale.value.numpy(), zero_point.value.numpy()
    dtype = str(quantize.attrs.out_dtype)
    if scale.size != 1 or zero_point.size != 1 or dtype not in ("int8", "uint8"):
        return None
    info = np.iinfo(dtype)
    return _Output(float(scale.reshape(())), int(zero_point.reshape(())), dtype, int(info.min), int(info.max))


def _same_params(x: _Activation, out: _Output) -> bool:
    return np.float32(x.scale) == np.float32(out.scale) and x.zero_point == out.zero_point


def _split_scalar_constant(node: relax.Call) -> tuple[relax.Expr | None, float]:
    lhs, rhs = node.args
    for operand, other in ((lhs, rhs), (rhs, lhs)):
        if isinstance(other, _CONSTANT) and other.value.numpy().size == 1:
            return operand, float(other.value.numpy().reshape(()))
    return None, 0.0


def _prim_float(expr) -> float | None:
    value = getattr(expr, "value", None)
    value = getattr(value, "value", value)
    return float(value) if isinstance(value, (int, float)) else None


def _is_int8_product(call: relax.Call) -> bool:
    """int8 x int8 summed into int32, or a conv of int8 data and int8 weight values held in a
    float32 constant, summed in float32 where that is exact (_EXACT_FLOAT_TERMS)."""
    data, weight = call.args[:2]
    if _dtype(data) not in _INTEGER_DTYPES:
        return False
    if _dtype(weight) in _INTEGER_DTYPES:
        return _dtype(call) == "int32"
    return _is_op(call, "relax.nn.conv2d") and isinstance(weight, _CONSTANT) and _dtype(call) == "float32"


def _is_dot_conv(mod: tvm.IRModule, callee) -> bool:
    """A call_tir of int8_dot's conv (qdq.py names its PrimFuncs int8_dot.CONV_NAME[_n])."""
    return isinstance(callee, tvm.ir.GlobalVar) and callee.name_hint.startswith(int8_dot.CONV_NAME)


def _int32(value: int) -> relax.Expr:
    return relax.const(np.int32(value), "int32")


def _is_op(expr, name: str) -> bool:
    return isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == name


def _dtype(expr) -> str | None:
    dtype = getattr(getattr(expr, "ty", None), "dtype", None)
    return str(dtype) if dtype is not None else None


def static_shape(expr) -> tuple[int, ...] | None:
    shape = getattr(getattr(expr, "ty", None), "shape", None)
    values = getattr(shape, "values", None)
    if values is None or not all(isinstance(d, tvm.tirx.IntImm) for d in values):
        return None
    return tuple(int(d) for d in values)
