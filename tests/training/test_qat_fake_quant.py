"""Fake quantization computes bit for bit what the QDQ graph computes (edgec.training.qat_fake_quant)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import helper

from edgec.quantization.scheme import (
    activation_qparams,
    dequantize,
    quantize,
    quantize_bias,
    weight_qparams,
)
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.training.qat_fake_quant import fake_quantize, fake_quantize_bias, fake_quantize_weight
from helpers import build_model


def _ort_qdq(x: np.ndarray, scale: np.float32, zero_point: np.int8) -> np.ndarray:
    model = build_model(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
        {"x": list(x.shape)}, ["y"],
        {"s": np.asarray(scale, np.float32), "z": np.asarray(zero_point, np.int8)})
    return OnnxRuntime.from_ir(model, optimize=False).run([x])[0]


def test_activation_fake_quant_equals_onnx_quantize_dequantize_including_ties():
    p = activation_qparams(-1.3, 2.9)
    rng = np.random.default_rng(0)
    ties = ((np.arange(-140, 140) + 0.5) * p.scale).astype(np.float32)  # exact halves of a step
    x = np.concatenate([rng.uniform(-2.0, 3.5, 20000).astype(np.float32), ties])
    ours = fake_quantize(torch.from_numpy(x), torch.tensor(p.scale), int(p.zero_point), -128, 127).numpy()
    np.testing.assert_array_equal(ours, _ort_qdq(x, p.scale, p.zero_point))


@pytest.mark.parametrize("bits", [8, 4])
def test_weight_fake_quant_equals_the_quantize_pass(bits):
    w = np.random.default_rng(1).standard_normal((6, 3, 3, 3)).astype(np.float32)
    w[2] = 0.0  # a pruned channel takes the largest real channel's scale
    p = weight_qparams(w, axis=0, bits=bits)
    ours, scales = fake_quantize_weight(torch.from_numpy(w), bits)
    np.testing.assert_array_equal(scales.numpy(), p.scale)
    np.testing.assert_array_equal(ours.numpy(), dequantize(quantize(w, p), p))
    assert len(np.unique(np.round(ours.numpy() / p.scale.reshape(-1, 1, 1, 1)))) <= 2 ** bits - 1


def test_bias_fake_quant_equals_int32_bias():
    rng = np.random.default_rng(2)
    b = rng.standard_normal(6).astype(np.float32)
    w_scales = rng.uniform(1e-3, 1e-2, 6).astype(np.float32)
    q, scale = quantize_bias(b, np.float32(0.0231), w_scales)
    ours = fake_quantize_bias(torch.from_numpy(b), torch.tensor(np.float32(0.0231)), torch.from_numpy(w_scales))
    np.testing.assert_array_equal(ours.numpy(), q.astype(np.float32) * scale)


def test_straight_through_gradient_stops_where_clamped():
    p = activation_qparams(-1.0, 1.0)
    x = torch.tensor([-3.0, -0.5, 0.0, 0.7, 3.0], requires_grad=True)
    fake_quantize(x, torch.tensor(p.scale), int(p.zero_point), -128, 127).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
