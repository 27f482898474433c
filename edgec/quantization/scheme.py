"""The integer scheme edgec deploys: the TFLite int8 spec, so XNNPACK's integer kernels run it.

- weights: symmetric, per output channel, zero point 0, narrow range ([-127, 127] for int8,
  [-7, 7] for int4: the narrow range keeps -w representable, so the kernels never overflow
  on negation and the int4 grid is symmetric like the int8 one);
- activations: asymmetric per tensor, int8 [-128, 127], the range always containing 0 so that
  zero padding is exact; or, for layers given 16-bit activations (TFLite's 16x8 mode),
  symmetric int16 with zero point 0;
- bias: int32, scale = input scale x weight scale, zero point 0.
QAT fake-quant (edgec.training.qat) uses these same functions' rules.
"""

from __future__ import annotations

import dataclasses

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -32768, 32767


def weight_qrange(bits: int) -> tuple[int, int]:
    """Narrow symmetric range for weights: int8 -> [-127, 127], int4 -> [-7, 7]."""
    q = 2 ** (bits - 1) - 1
    return -q, q


@dataclasses.dataclass(frozen=True)
class QParams:
    scale: np.ndarray  # float32, shape () per tensor or (C,) per channel
    zero_point: np.ndarray  # same shape as scale
    qmin: int
    qmax: int
    axis: int | None = None  # channel axis for per-channel parameters

    @property
    def per_channel(self) -> bool:
        return self.axis is not None


# A range narrower than this holds only zeros as far as int8 is concerned (one step would be
# below 4e-15): it gets a scale from its neighbours (zero_tensor_qparams), never range/255.
DEGENERATE_RANGE = 1e-12
# The step of a zero tensor whose neighbours carry no scale: as if its range were [0, 1].
ZERO_TENSOR_SCALE = 1.0 / 255


def is_degenerate_range(lo: float, hi: float) -> bool:
    """True for a calibrated range that is (numerically) a single point at zero."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    return hi - lo < DEGENERATE_RANGE


def zero_tensor_qparams(scale: float | None = None) -> QParams:
    """Parameters for an activation that is zero on every sample: zero is exact on any grid,
    so the scale is chosen for the kernels (a neighbour's scale keeps XNNPACK's ratios near 1)
    and the zero point is -128, as for a rectified tensor."""
    s = np.float32(scale if scale is not None and np.isfinite(scale) and scale > 0 else ZERO_TENSOR_SCALE)
    return QParams(s, np.int8(INT8_MIN), INT8_MIN, INT8_MAX)


def activation_qparams(lo: float, hi: float) -> QParams:
    """Asymmetric int8 per tensor, as TFLite's calibrator chooses: the range is widened to hold 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < DEGENERATE_RANGE:
        return zero_tensor_qparams()
    scale = (hi - lo) / (INT8_MAX - INT8_MIN)
    zero_point = int(np.clip(np.round(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
    return QParams(np.float32(scale), np.int8(zero_point), INT8_MIN, INT8_MAX)


def int16_activation_qparams(lo: float, hi: float) -> QParams:
    """Symmetric int16 per tensor, zero point 0: TFLite's 16x8 mode (int16 activations, int8
    weights), whose kernels take no activation zero point."""
    bound = max(abs(float(lo)), abs(float(hi)), 1e-6)
    return QParams(np.float32(bound / INT16_MAX), np.int16(0), INT16_MIN, INT16_MAX)


def fixed_qparams(scale: float, zero_point: int, bits: int = 8) -> QParams:
    """Output parameters fixed by the TFLite spec (e.g. LOGISTIC/SOFTMAX: 1/256, -128; in
    16x8 mode 1/32768, 0)."""
    if bits == 16:
        return QParams(np.float32(scale), np.int16(zero_point), INT16_MIN, INT16_MAX)
    return QParams(np.float32(scale), np.int8(zero_point), INT8_MIN, INT8_MAX)


def weight_qparams(w: np.ndarray, axis: int, bits: int = 8) -> QParams:
    """Symmetric per-channel scales over `axis` (the output channel axis in ONNX layout)."""
    qmin, qmax = weight_qrange(bits)
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
    absmax = np.max(np.abs(w), axis=reduce_axes) if reduce_axes else np.abs(w)
    # An all-zero channel (pruned, or a conv folded with a zero-initialised BatchNorm) still
    # needs a positive scale; any value dequantizes to 0, so it takes the largest scale of the
    # other channels (the requantization ratio XNNPACK bounds stays that of a real channel),
    # or 1/qmax (as if |w| <= 1) when every channel is zero.
    nonzero = absmax > 0
    fill = float(absmax[nonzero].max() / qmax) if np.any(nonzero) else 1.0 / qmax
    scale = np.where(nonzero, absmax / qmax, fill).astype(np.float32)
    return QParams(scale, np.zeros_like(scale, dtype=np.int8), qmin, qmax, axis)


def _broadcast(params: QParams, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    if params.axis is None:
        return params.scale, params.zero_point.astype(np.int32)
    shape = [1] * ndim
    shape[params.axis] = -1
    return params.scale.reshape(shape), params.zero_point.astype(np.int32).reshape(shape)


def quantize(x: np.ndarray, params: QParams) -> np.ndarray:
    """Round half to even, as ONNX QuantizeLinear does (the reference every artifact is held to)."""
    scale, zp = _broadcast(params, x.ndim)
    q = np.rint(x.astype(np.float64) / scale) + zp
    return np.clip(q, params.qmin, params.qmax).astype(np.int16 if params.qmax > INT8_MAX else np.int8)


def dequantize(q: np.ndarray, params: QParams) -> np.ndarray:
    scale, zp = _broadcast(params, q.ndim)
    return ((q.astype(np.int32) - zp) * scale).astype(np.float32)


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 bias with scale = input scale x weight scale (per channel), zero point 0."""
    scale = (np.float32(input_scale) * weight_scale.astype(np.float32)).astype(np.float32)
    q = np.rint(bias.astype(np.float64) / scale.astype(np.float64))
    q = np.clip(q, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
    return q, scale
