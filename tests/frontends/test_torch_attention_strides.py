"""Attention outputs reshaped after scaled_dot_product_attention convert to ONNX.

T5 and Swin in transformers end their attention with SDPA (a float mask) -> reshape ->
transpose(1, 2).contiguous().reshape(...). torch's ONNX exporter failed on that pattern ("Cannot
view a tensor with shape ... and strides ...") because the view-or-copy decisions of contiguous and
reshape were taken on SDPA's fake strides, which differ from its decomposition's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgec.frontends import load_model
from edgec.frontends.torch_module import copies_instead_of_stride_decisions
from edgec.ir import to_bytes
from edgec.runtimes.onnxrt import OnnxRuntime


class MaskedAttention(torch.nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4, seq: int = 6):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = torch.nn.Linear(dim, 3 * dim)
        self.bias = torch.nn.Parameter(torch.randn(1, heads, seq, seq))  # T5's position bias, a float mask

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        mask = self.bias.expand(b, self.heads, n, n).contiguous()
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        o = o.reshape(b, -1, n, self.head_dim)
        return o.transpose(1, 2).contiguous().reshape(b, n, -1)


@pytest.fixture(scope="module")
def attention():
    torch.manual_seed(0)
    return MaskedAttention().eval(), torch.randn(1, 6, 32)


def _check(imported, module, x):
    out = OnnxRuntime(to_bytes(imported.model)).run([x.numpy()])[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, module(x).numpy(), rtol=1e-5, atol=1e-5)


def test_exported_program_with_attention_reshape_converts_and_matches_torch(attention, tmp_path):
    module, x = attention
    path = tmp_path / "attention.pt2"
    torch.export.save(torch.export.export(module, (x,)), path)
    _check(load_model(path), module, x)


def test_module_with_attention_reshape_converts_and_matches_torch(attention):
    module, x = attention
    _check(load_model(module, example_inputs=(x,)), module, x)


def test_the_rewrite_leaves_the_program_as_it_was(attention):
    module, x = attention
    program = torch.export.export(module, (x,))
    before = [(n.name, n.target, n.args, dict(n.kwargs)) for n in program.graph.nodes]
    with copies_instead_of_stride_decisions(program):
        targets = {n.target for n in program.graph.nodes}
        assert torch.ops.aten.contiguous.default not in targets and torch.ops.aten.reshape.default not in targets
    assert [(n.name, n.target, n.args, dict(n.kwargs)) for n in program.graph.nodes] == before
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), module(x))
