"""A torch model exported with torch.onnx.export(dynamo=True, opset 21), lowered to TFLite.

The model joins the two export patterns the zoo relies on: a MobileNet-v2 inverted residual
(BatchNorm, ReLU6 as Clip, depthwise conv, residual Add) and a transformer encoder layer
(MatMul/Gemm, head Reshape/Transpose, Softmax, LayerNormalization, Gelu), so the exporter's
real output is what the lowering sees.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgec.ir import sample_inputs
from tflite_cases import lower_and_compare


class InvertedResidual(nn.Module):
    def __init__(self, channels: int, expand: int = 4):
        super().__init__()
        hidden = channels * expand
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x):
        return x + self.body(x)


class HybridNet(nn.Module):
    """Conv stem, an inverted residual, patch tokens, a transformer encoder layer, a head."""

    def __init__(self, dim: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU6())
        self.block = InvertedResidual(16)
        self.patches = nn.Conv2d(16, dim, 2, 2)
        self.encoder = nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.0, activation="gelu", batch_first=True)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.block(self.stem(x))
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        return self.head(self.encoder(tokens).mean(1))


@pytest.fixture(scope="module")
def exported():
    torch.manual_seed(0)
    net = HybridNet().eval()
    for m in net.modules():  # non-trivial BatchNorm statistics, so folding them is checked
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    program = torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), dynamo=True, opset_version=21, verbose=False)
    return net, program.model


def test_exported_hybrid_model_matches_onnxruntime_and_torch(exported, tmp_path):
    net, model = exported
    onnx_ops = {n.op_type for n in model.graph}
    assert {"Conv", "Clip", "MatMul", "Softmax", "LayerNormalization", "Gelu", "Transpose"} <= onnx_ops

    result = lower_and_compare(model, tmp_path / "hybrid.tflite")

    assert result.rel_error <= 1e-5
    assert result.delegation["fraction"] == 1.0, result.delegation["not_delegated"]
    ops = result.report["ops"]
    assert ops["DEPTHWISE_CONV_2D"] == 1 and ops["GELU"] == 1 and ops["SOFTMAX"] == 1
    assert "RELU6" not in ops  # fused into the convolutions
    # One TRANSPOSE for the NCHW input, four for attention heads (Q, K, V in, context out):
    # none in the convolutional part, none around LayerNorm or the MLP.
    assert ops["TRANSPOSE"] <= 5

    x = sample_inputs(model)[0]
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    actual = result.runtime.run([x])[0]
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
