"""Block fusion in the TVM lowering: one tiled PrimFunc per ConvFirst / MBConv block, same output."""

import numpy as np
import pytest
import torch
from torch import nn

from edgec.frontends.torch_module import export_module
from edgec.lower.tvm import lower_tvm
from edgec.lower.tvm.fusion import choose_tile
from edgec.lower.tvm.layers import read_layers
from edgec.passes import run_passes
from edgec.runtimes.tvmrt import TVMRuntime
from edgec.targets import get_target
from edgec.zoo.convfirst import ConvFirstBlock
from edgec.zoo.mobilenet_v2 import InvertedResidual


def _with_real_batchnorm(block: nn.Module) -> nn.Module:
    """Non-trivial BN statistics, so every folded conv has a bias the fusion must carry."""
    torch.manual_seed(1)
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.5)
    return block.eval()


def _lower(module: nn.Module, x: torch.Tensor, target_name: str, path):
    target = get_target(target_name)
    model, _ = run_passes(export_module(module, (x,)), list(target.passes))
    info = lower_tvm(model, target, path)
    return info, TVMRuntime(path).run([x.numpy()])[0]


def _in_network(block: nn.Module, channels: int) -> nn.Module:
    """The block behind a 1x1 conv, as in a network: its input (the residual) is then a
    channels-last tensor, not the NCHW model input the residual add would stay with."""
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(channels, channels, 1), block).eval()


def _kernels(library) -> list[dict]:
    """The library's kernels (layers.json rows) besides the NCHW<->NHWC transposes that the
    channels-last lowering puts at the model's input and output."""
    return [row for row in read_layers(library)["layers"] if not row["symbol"].startswith("transpose")]


def _fused_vs_unfused(module, x, tmp_path):
    with torch.no_grad():
        expected = module(x).numpy()
    fused_info, fused = _lower(module, x, "x86_64-fp32-fused", tmp_path / "fused.so")
    plain_info, plain = _lower(module, x, "x86_64-fp32", tmp_path / "plain.so")
    np.testing.assert_allclose(fused, plain, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused, expected, rtol=1e-4, atol=1e-4)
    return fused_info, plain_info


# The stride-2 block keeps freshly initialised BatchNorms: they fold to no bias at all, so the
# block ends in the project conv itself (a reduction) instead of a bias or residual add.
@pytest.mark.parametrize("stride,residual_kind", [(1, "convfirst_block_residual"), (2, "convfirst_block")])
def test_convfirst_block_is_one_primfunc_and_matches_torch_and_the_unfused_build(tmp_path, stride, residual_kind):
    block = ConvFirstBlock(16, 16, stride=stride).eval()
    block = _in_network(_with_real_batchnorm(block) if stride == 1 else block, 16)
    x = torch.randn(1, 16, 16, 16)
    fused, plain = _fused_vs_unfused(block, x, tmp_path)
    assert len(_kernels(tmp_path / "fused.so")) == 2 and len(_kernels(tmp_path / "plain.so")) >= 4  # + the 1x1 conv
    assert fused["block_fusion"]["kinds"] == {residual_kind: 1}
    assert "untiled" not in fused["block_fusion"]  # the channels-last tiled schedule applied
    assert "block_fusion" not in plain


def test_mbconv_block_is_one_primfunc_and_matches_torch_and_the_unfused_build(tmp_path):
    block = _in_network(_with_real_batchnorm(InvertedResidual(16, 16, stride=1, expansion=6)), 16)
    x = torch.randn(1, 16, 16, 16)
    fused, plain = _fused_vs_unfused(block, x, tmp_path)
    assert len(_kernels(tmp_path / "fused.so")) == 2 and len(_kernels(tmp_path / "plain.so")) >= 4
    assert fused["block_fusion"]["kinds"] == {"mbconv_block_residual": 1}


def test_tiling_keeps_the_expanded_intermediate_per_tile(tmp_path):
    # 32 -> 128 channels at 32x32: whole-image intermediates are 512 KiB each.
    block = _in_network(_with_real_batchnorm(ConvFirstBlock(32, 32)), 32)
    x = torch.randn(1, 32, 32, 32)
    _fused_vs_unfused(block, x, tmp_path)
    fused = read_layers(tmp_path / "fused.so")
    plain = read_layers(tmp_path / "plain.so")
    (row,) = [r for r in fused["layers"] if r["kind"] != "op"]
    assert row["kind"] == "convfirst_block_residual"
    # Same work, the block's counted before tiling.
    assert sum(r["flops"] for r in fused["layers"]) == sum(r["flops"] for r in plain["layers"])  # same work, counted before tiling
    assert fused["workspace"]["peak_bytes"] < plain["workspace"]["peak_bytes"] / 2


class _LeakyBlock(nn.Module):
    """A ConvFirst block whose expanded intermediate is also a model output."""

    def __init__(self):
        super().__init__()
        self.block = ConvFirstBlock(16, 16)

    def forward(self, x):
        b = self.block
        mid = b.act(b.expand_bn(b.expand(b.conv_bn(b.conv(x)))))
        return x + b.project_bn(b.project(mid)), mid


def test_a_block_whose_intermediate_is_read_elsewhere_is_not_fused(tmp_path):
    module = _LeakyBlock().eval()
    x = torch.randn(1, 16, 8, 8)
    target = get_target("x86_64-fp32-fused")
    model, _ = run_passes(export_module(module, (x,)), list(target.passes))
    info = lower_tvm(model, target, tmp_path / "m.so")
    assert info["block_fusion"]["fused_blocks"] == 0
    with torch.no_grad():
        expected = [t.numpy() for t in module(x)]
    for got, want in zip(TVMRuntime(tmp_path / "m.so").run([x.numpy()]), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_tiles_divide_the_output_and_fit_the_budget():
    # ConvFirst: a register tile of 8-lane rows where W allows, else bigger tiles of whole rows.
    assert choose_tile(56, 56, 256) == (4, 8)
    assert choose_tile(14, 14, 512) == (7, 14)
    assert choose_tile(7, 7, 1024) == (7, 7)
    # MBConv: full-width row strips, as tall as 2 x C x rows x W x 4 B <= 512 KiB allows.
    assert choose_tile(56, 56, 144, row_strips=True) == (8, 56)
    assert choose_tile(13, 13, 1 << 20, row_strips=True) == (1, 13)  # nothing fits: one row at a time
