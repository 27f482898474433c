"""The integer scheme edgec deploys: the TFLite int8 spec, so XNNPACK's integer kernels run it.

- weights: symmetric, per output channel, zero point 0, narrow range ([-127, 127] for int8,
  [-7, 7] for int4: the narrow range keeps -w representable, so the kernels never overflow
  on negation and the int4 grid is symmetric like the int8 one);
- activations: asymmetric per tensor, int8 [-128, 127], the range always containing 0 so that
  zero padding is exact;
- bias: int32, scale = input scale x weight scale, zero point 0.
QAT fake-quant (edgec.training.qat) uses these same functions' rules.
"""

from __future__ import annotations

import dataclasses

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


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


def activation_qparams(lo: float, hi: float) -> QParams:
    """Asymmetric int8 per tensor, as TFLite's calibrator chooses: the range is widened to hold 0."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    scale = (hi - lo) / (INT8_MAX - INT8_MIN)
    zero_point = int(np.clip(np.round(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
    return QParams(np.float32(scale), np.int8(zero_point), INT8_MIN, INT8_MAX)


def fixed_qparams(scale: float, zero_point: int) -> QParams:
    """Output parameters fixed by the TFLite spec (e.g. LOGISTIC/SOFTMAX: 1/256, -128)."""
    return QParams(np.float32(scale), np.int8(zero_point), INT8_MIN, INT8_MAX)


def weight_qparams(w: np.ndarray, axis: int, bits: int = 8) -> QParams:
    """Symmetric per-channel scales over `axis` (the output channel axis in ONNX layout)."""
    qmin, qmax = weight_qrange(bits)
    reduce_axes = tuple(i for i in range(w.ndim) if i != axis)
    absmax = np.max(np.abs(w), axis=reduce_axes) if reduce_axes else np.abs(w)
    # An all-zero channel (pruned) still needs a positive scale; any value dequantizes to 0.
    scale = np.where(absmax > 0, absmax / qmax, 1.0).astype(np.float32)
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
    return np.clip(q, params.qmin, params.qmax).astype(np.int8)


def dequantize(q: np.ndarray, params: QParams) -> np.ndarray:
    scale, zp = _broadcast(params, q.ndim)
    return ((q.astype(np.int32) - zp) * scale).astype(np.float32)


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int32 bias with scale = input scale x weight scale (per channel), zero point 0."""
    scale = (np.float32(input_scale) * weight_scale.astype(np.float32)).astype(np.float32)
    q = np.rint(bias.astype(np.float64) / scale.astype(np.float64))
    q = np.clip(q, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
    return q, scale
