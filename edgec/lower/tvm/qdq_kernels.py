"""The requantize kernel (TE) and compile-time arithmetic for the TVM int8 lowering (qdq.py).

Rounding is half to even (`nearbyint`), as ONNX QuantizeLinear and so onnxruntime's QDQ
reference round.
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

INT32_MIN, INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max


def requantize(acc: te.Tensor, bias: te.Tensor, multiplier: te.Tensor, *, axis: int,
               zero_point: int, qmin: int, qmax: int, out_dtype: str = "int8") -> te.Tensor:
    """int32 accumulator -> int8: clamp(nearbyint((acc + bias[c]) * multiplier[c]) + zp, qmin, qmax).

    `bias` (int32) and `multiplier` (float32, s_x * s_w[c] / s_y) are indexed by the element's
    index along `axis` (the output channel), or are one value for the whole tensor. The
    multiplication is float32, not TFLite's fixed-point multiplier and shift, whose rounding
    differs from the float reference's. The accumulator is exact; the reference sums float32
    products, and that rounding noise moves a value across a rounding boundary on about 3 in
    a million elements (measured on single convs; onnxruntime's QLinearConv shows the same).
    """
    def per_channel(t: te.Tensor, index):
        return t[0] if int(t.shape[0]) == 1 else t[index[axis]]

    def compute(*index):
        total = acc(*index) + per_channel(bias, index)
        scaled = total.astype("float32") * per_channel(multiplier, index)
        return _round_clamp_cast(scaled, zero_point, qmin, qmax, out_dtype)

    return te.compute(acc.shape, compute, name="requantize")


def _round_clamp_cast(value, zero_point: int, qmin: int, qmax: int, out_dtype: str):
    # Clamped in float before the cast: a float -> int conversion out of range is undefined.
    shifted = te.nearbyint(value) + tirx.const(float(zero_point), "float32")
    lo, hi = tirx.const(float(qmin), "float32"), tirx.const(float(qmax), "float32")
    return te.max(te.min(shifted, hi), lo).astype(out_dtype)


def round_half_even(x: np.ndarray | float) -> np.ndarray:
    """numpy's rint is round-half-to-even, like nearbyint in the default rounding mode."""
    return np.rint(x)


def quantized_bound(bound: float, scale: float, zero_point: int, qmin: int, qmax: int) -> int:
    """Where a float clamp bound (a fused Relu/ReLU6/Clip) lands on the int8 grid.

    Quantization is monotonic, so quantize(clamp(y, lo, hi)) = clamp(quantize(y), q(lo), q(hi)):
    a fused activation becomes the requantization's clamp, with no float op left.
    """
    if np.isinf(bound):
        return qmin if bound < 0 else qmax
    q = round_half_even(np.float32(bound) / np.float32(scale)) + zero_point
    return int(np.clip(q, qmin, qmax))


def fold_bias(weight_sums: np.ndarray, input_zero_point: int, bias: np.ndarray | None,
              bias_rescale: np.ndarray | None) -> np.ndarray:
    """The int32 constant added to an int8 x int8 accumulator, per output channel.

    sum_k (x_k - zx) w_k = sum_k x_k w_k - zx * sum_k w_k: the activation zero point is
    exact as a per-channel constant, so the product itself runs on the raw int8 values.
    A bias whose scale is not exactly s_x * s_w[c] is first rescaled to it (`bias_rescale`).
    """
    folded = -np.int64(input_zero_point) * weight_sums.astype(np.int64)
    if bias is not None:
        b = bias.astype(np.int64) if bias_rescale is None else \
            round_half_even(bias.astype(np.float64) * bias_rescale).astype(np.int64)
        folded = folded + b
    if folded.min(initial=0) < INT32_MIN or folded.max(initial=0) > INT32_MAX:
        raise OverflowError("the folded int32 bias overflows int32")
    return folded.astype(np.int32)
