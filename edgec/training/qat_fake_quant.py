"""Fake quantization: the deployed integer arithmetic computed in float, with a straight-through gradient.

Each function reproduces, bit for bit, what the QDQ graph computes (edgec.quantization.scheme
and passes/quantize.py), because a QAT model is only worth training if its torch output is
the deployed model's output:
- activations: onnxruntime's QuantizeLinear divides in float32 and rounds half to even, then
  DequantizeLinear multiplies in float32. torch.fake_quantize_per_tensor_affine multiplies by
  a float32 reciprocal instead and lands on the other side of a rounding tie now and then
  (46 of 200,600 values measured here), so it is not used;
- weights and biases: the quantize pass computes their integers in numpy float64
  (scheme.quantize / scheme.quantize_bias), so these divide in float64.
The gradient is the straight-through estimator of the whitepaper: identity where the value
lies inside the quantization range, zero where it was clamped.
"""

from __future__ import annotations

import torch

from edgec.quantization.scheme import weight_qrange

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


class _FakeQuantize(torch.autograd.Function):
    """(clamp(round(x / scale) + zp, qmin, qmax) - zp) * scale; gradient passes where not clamped."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, qmin, qmax, float64):
        num = x.double() / scale.double() if float64 else x / scale
        q = torch.round(num) + zero_point  # torch.round rounds half to even, as QuantizeLinear
        inside = (q >= qmin) & (q <= qmax)
        ctx.save_for_backward(inside)
        q = q.clamp(qmin, qmax).to(x.dtype)
        return (q - zero_point) * scale

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None, None


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | int,
                  qmin: int, qmax: int, *, float64: bool = False) -> torch.Tensor:
    """Quantize and dequantize `x` (scale/zero point broadcast against it)."""
    scale = torch.as_tensor(scale, dtype=torch.float32)
    zero_point = torch.as_tensor(zero_point, dtype=torch.float32)
    return _FakeQuantize.apply(x, scale, zero_point, qmin, qmax, float64)


def weight_scales(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric per-output-channel scales (axis 0), as scheme.weight_qparams: absmax / qmax in
    float32; an all-zero channel as there. From the current weights, so no gradient flows into them."""
    _, qmax = weight_qrange(bits)
    absmax = weight.detach().abs().reshape(weight.shape[0], -1).amax(dim=1)
    scales = absmax / qmax
    nonzero = absmax > 0  # all-zero channels: the largest real scale, else 1/qmax (scheme.weight_qparams)
    fill = scales[nonzero].max() if bool(nonzero.any()) else torch.tensor(1.0 / qmax, dtype=scales.dtype)
    return torch.where(nonzero, scales, fill.expand_as(scales))


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel narrow-range fake quantization of a Conv/Linear weight (output channels
    on axis 0, as torch stores them); returns the weight and its scales."""
    qmin, qmax = weight_qrange(bits)
    scales = weight_scales(weight, bits)
    shaped = scales.reshape((-1,) + (1,) * (weight.dim() - 1))
    return fake_quantize(weight, shaped, 0, qmin, qmax, float64=True), scales


def fake_quantize_bias(bias: torch.Tensor, input_scale: torch.Tensor, weight_scales_: torch.Tensor) -> torch.Tensor:
    """int32 bias with scale = input scale x weight scale (float32 product, as scheme.quantize_bias)."""
    scale = torch.as_tensor(input_scale, dtype=torch.float32) * weight_scales_
    return fake_quantize(bias, scale, 0, INT32_MIN, INT32_MAX, float64=True)
