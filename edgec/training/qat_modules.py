"""The modules a QAT-prepared model is made of.

- ActivationQuantizer: one per set of activation tensors that share quantization parameters
  in the QDQ graph; tracks the range by exponential moving average and fake-quantizes.
- QuantizedLayer: a Conv/Linear (optionally with the BatchNorm after it folded in) whose
  weights and bias are fake-quantized as the deployed kernel sees them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgec.errors import EdgecError
from edgec.quantization.scheme import INT8_MAX, INT8_MIN, QParams, activation_qparams, fixed_qparams
from edgec.training.qat_fake_quant import fake_quantize, fake_quantize_bias, fake_quantize_weight


class ActivationQuantizer(nn.Module):
    """Asymmetric per-tensor int8 fake quantization with an EMA range (whitepaper, section 3).

    In training mode each call first moves the range toward the batch's min/max
    (lo <- decay * lo + (1 - decay) * min), the first batch setting it outright; `observing`
    False (qat.freeze) keeps it fixed. Parameters come from scheme.activation_qparams on the
    very (lo, hi) that export_ranges hands the quantize pass, so both compute the same scale and
    zero point. `fixed` (Sigmoid/Softmax/Tanh outputs) replaces the range with TFLite's fixed
    parameters. A quantizer shared by several tensors (pooling, reshapes, concatenation) is
    called at each of them and each call moves the range: a concatenation's range follows all
    its inputs.
    """

    def __init__(self, tensors: list[str], ema_decay: float = 0.99, fixed: tuple[float, int] | None = None):
        super().__init__()
        if not 0.0 <= ema_decay < 1.0:
            raise EdgecError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.tensors = list(tensors)  # the ONNX tensors these parameters quantize
        self.ema_decay = ema_decay
        self.fixed = fixed
        self.observing = True
        self.register_buffer("lo", torch.zeros((), dtype=torch.float32))
        self.register_buffer("hi", torch.zeros((), dtype=torch.float32))
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool))
        self._cache: tuple[tuple[float, float], QParams] | None = None

    def extra_repr(self) -> str:
        what = f"fixed={self.fixed}" if self.fixed else f"range=({float(self.lo):.4g}, {float(self.hi):.4g})"
        return f"{what}, tensors={self.tensors[:2]}{'...' if len(self.tensors) > 2 else ''}"

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        lo, hi = x.min().float(), x.max().float()
        if not bool(self.observed):
            self.lo.copy_(lo)
            self.hi.copy_(hi)
            self.observed.fill_(True)
            return
        d = self.ema_decay
        self.lo.mul_(d).add_((1 - d) * lo)
        self.hi.mul_(d).add_((1 - d) * hi)

    def range(self) -> tuple[float, float]:
        """The (lo, hi) handed to the quantize pass for every tensor of this quantizer."""
        if self.fixed is not None:
            scale, zp = self.fixed
            return (INT8_MIN - zp) * scale, (INT8_MAX - zp) * scale
        if not bool(self.observed):
            raise EdgecError(
                f"activation '{self.tensors[0]}' has no range yet: run at least one training step "
                "(model.train(), a forward pass) after qat.prepare before evaluating or compiling")
        return float(self.lo), float(self.hi)

    def qparams(self) -> QParams:
        if self.fixed is not None:
            return fixed_qparams(*self.fixed)
        key = self.range()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, activation_qparams(*key))
        return self._cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.observing and self.fixed is None:
            self.observe(x)
        p = self.qparams()
        return fake_quantize(x, torch.from_numpy(np.asarray(p.scale)), int(p.zero_point), p.qmin, p.qmax)


_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class QuantizedLayer(nn.Module):
    """Conv/Linear with per-channel fake-quantized weights, its BatchNorm folded in.

    Folding follows the whitepaper (section 3.2) in PyTorch's single-conv form: the weight is
    always folded with the running sigma, W * gamma / sigma, and quantized, so the integers the
    model trains with are the ones deployment computes. While BatchNorm statistics are live
    (training, not frozen) the conv output is divided back by gamma / sigma and normalized with
    the batch statistics (this is the sigma / sigma_B correction plus the batch-mean bias), which
    also updates the running statistics. Frozen or in eval mode it is the deployed layer:
    conv(x, Q(W_fold)) + Q(b_fold), the bias quantized to int32 with scale s_in x s_w.

    The fold reproduces the exporter's (onnxscript FuseBatchNormIntoConv) float32 arithmetic, so
    the folded weight is bitwise the one in the exported graph.
    """

    def __init__(self, layer: nn.Module, bn: nn.Module | None, weight_bits: int,
                 input_quantizer: ActivationQuantizer, onnx_node: str):
        super().__init__()
        if not isinstance(layer, _LAYERS):
            raise EdgecError(f"QAT cannot quantize a {type(layer).__name__} (ONNX node '{onnx_node}')")
        if bn is not None and not (isinstance(bn, _BN) and bn.affine and bn.track_running_stats):
            raise EdgecError(f"QAT folds only affine BatchNorm with running statistics into a layer, not "
                             f"{bn} (ONNX node '{onnx_node}')")
        self.layer = layer
        self.bn = bn
        self.weight_bits = weight_bits
        self.onnx_node = onnx_node
        self.bn_frozen = False
        # A reference, not a child: the quantizer is registered (and trained) where the model owns it.
        self._input_quantizer = [input_quantizer]

    def extra_repr(self) -> str:
        return f"weight_bits={self.weight_bits}, onnx_node='{self.onnx_node}', bn_frozen={self.bn_frozen}"

    def _run(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        layer = self.layer
        if isinstance(layer, nn.Linear):
            return F.linear(x, weight, bias)
        return layer._conv_forward(x, weight, bias)

    def _channel_shape(self, y: torch.Tensor) -> tuple[int, ...]:
        """Broadcast shape of a per-output-channel vector against the layer output."""
        if isinstance(self.layer, nn.Linear):
            return (-1,)  # channels last
        return (-1,) + (1,) * (y.dim() - 2)

    def _quantized_bias(self, bias: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        input_scale = torch.from_numpy(np.asarray(self._input_quantizer[0].qparams().scale))
        return fake_quantize_bias(bias, input_scale, scales)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight and bias with BatchNorm's running statistics folded in, in the exporter's arithmetic."""
        weight, bias = self.layer.weight, self.layer.bias
        if self.bn is None:
            return weight, bias
        gamma_over_std = self._gamma_over_std()
        weight = self._scaled_weight(gamma_over_std)
        bias = bias if bias is not None else torch.zeros_like(self.bn.running_mean)
        return weight, (bias - self.bn.running_mean) * gamma_over_std + self.bn.bias

    def _scaled_weight(self, gamma_over_std: torch.Tensor) -> torch.Tensor:
        weight = self.layer.weight
        return weight * gamma_over_std.reshape((-1,) + (1,) * (weight.dim() - 1))

    def _gamma_over_std(self) -> torch.Tensor:
        bn = self.bn
        eps = torch.tensor(bn.eps, dtype=torch.float32)  # the ONNX attribute is float32
        # torch's float32 sqrt is not correctly rounded (it differed from numpy's on 16% of random
        # inputs here); float64 sqrt rounded once to float32 is, as numpy's is.
        std = torch.sqrt((bn.running_var + eps).double()).float()
        return bn.weight / std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn is not None and self.training and not self.bn_frozen:
            return self._forward_batch_statistics(x)
        weight, bias = self.folded()
        weight_q, scales = fake_quantize_weight(weight, self.weight_bits)
        bias_q = self._quantized_bias(bias, scales) if bias is not None else None
        return self._run(x, weight_q, bias_q)

    def _forward_batch_statistics(self, x: torch.Tensor) -> torch.Tensor:
        bn = self.bn
        gamma_over_std = self._gamma_over_std()
        weight_q, _ = fake_quantize_weight(self._scaled_weight(gamma_over_std), self.weight_bits)
        y = self._run(x, weight_q, None)
        shape = self._channel_shape(y)
        # gamma = 0 makes the channel constant; dividing by 1 there keeps it finite.
        safe = torch.where(gamma_over_std == 0, torch.ones_like(gamma_over_std), gamma_over_std)
        y = y / safe.reshape(shape)
        if self.layer.bias is not None:
            y = y + self.layer.bias.reshape(shape)
        bn.num_batches_tracked.add_(1)
        # momentum None means a cumulative average, as in nn.BatchNorm.
        momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        return F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=True,
                            momentum=momentum, eps=bn.eps)
