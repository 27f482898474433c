"""`edgec analyze`: per-kernel FLOPs, bytes, time and efficiency of a TVM artifact."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgec.analyze import analyze, display_name
from edgec.analyze.peak import MachinePeak, measure_peak
from edgec.cli import main
from edgec.errors import EdgecError
from edgec.frontends.torch_module import export_module
from edgec.lower.tvm import lower_tvm
from edgec.passes import run_passes
from edgec.targets import get_target
from edgec.zoo.convfirst import ConvFirstBlock

# Fixed, so the efficiency arithmetic is checkable without measuring this machine.
PEAK = MachinePeak(flops_per_s=50e9, bytes_per_s=10e9, threads=1)


class _TinyConvFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(ConvFirstBlock(16, 16), ConvFirstBlock(16, 32, stride=2))

    def forward(self, x):
        return self.blocks(torch.relu(self.stem(x)))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """The same model built fused and unfused: {target name: .so path}."""
    torch.manual_seed(0)
    module = _TinyConvFirst().eval()
    x = torch.randn(1, 3, 32, 32)
    out = tmp_path_factory.mktemp("analyze")
    paths = {}
    for name in ("x86_64-fp32-fused", "x86_64-fp32"):
        target = get_target(name)
        model, _ = run_passes(export_module(module, (x,)), list(target.passes))
        paths[name] = out / f"tiny.{name}.so"
        lower_tvm(model, target, paths[name])
    return paths


def test_fused_blocks_are_single_rows_carrying_all_their_flops(artifacts):
    fused = analyze(artifacts["x86_64-fp32-fused"], repeat=3, warmup=1, peak=PEAK)
    plain = analyze(artifacts["x86_64-fp32"], repeat=3, warmup=1, peak=PEAK)
    kinds = [r["kind"] for r in fused["layers"]]
    assert kinds.count("convfirst_block_residual") == 1 and kinds.count("convfirst_block") == 1
    assert len(fused["layers"]) < len(plain["layers"])
    assert fused["totals"]["flops"] == plain["totals"]["flops"] > 0
    assert fused["totals"]["fused_blocks"] == 2 and plain["totals"]["fused_blocks"] == 0


def test_efficiency_and_roofline_follow_from_flops_bytes_time_and_the_peak(artifacts):
    report = analyze(artifacts["x86_64-fp32-fused"], repeat=3, warmup=1, peak=PEAK)
    assert report["machine"]["ridge_flops_per_byte"] == pytest.approx(5.0)
    for r in report["layers"]:
        achieved = r["flops"] / (r["time_ms"] / 1e3)
        assert r["time_ms"] > 0
        assert r["efficiency"] == pytest.approx(achieved / PEAK.flops_per_s)
        assert r["flops_per_byte"] == pytest.approx(r["flops"] / r["bytes"])
        assert r["attainable_gflops_per_s"] == pytest.approx(min(50.0, r["flops_per_byte"] * 10.0))
        assert r["bound"] == ("memory" if r["flops_per_byte"] < 5.0 else "compute")
    assert sum(r["time_share"] for r in report["layers"]) == pytest.approx(1.0)


def test_cli_writes_the_json_table_and_the_png(artifacts, tmp_path, capsys):
    json_path, png_path = tmp_path / "report.json", tmp_path / "gap.png"
    rc = main(["analyze", str(artifacts["x86_64-fp32-fused"]), "--device", "host", "--repeat", "2",
               "--warmup", "0", "--json", str(json_path), "--plot", str(png_path)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "convfirst_block" in printed and "of peak" in printed
    report = json.loads(json_path.read_text())
    assert report["device"] == "host" and report["machine"]["gflops_per_s"] > 0
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_what_analyze_cannot_measure_is_refused_with_the_reason(artifacts, tmp_path):
    with pytest.raises(EdgecError, match="no per-operator timing"):
        tflite = tmp_path / "m.tflite"
        tflite.write_bytes(b"")
        analyze(tflite)
    with pytest.raises(EdgecError, match="--device host"):
        analyze(artifacts["x86_64-fp32"], device="rk3588")
    bare = tmp_path / "bare.so"
    bare.write_bytes(artifacts["x86_64-fp32"].read_bytes())
    with pytest.raises(EdgecError, match="no layer table"):
        analyze(bare)


def test_measured_peak_is_positive_and_its_ridge_is_consistent():
    peak = measure_peak(threads=1)
    assert peak.flops_per_s > 1e8 and peak.bytes_per_s > 1e8
    assert peak.ridge_intensity == pytest.approx(peak.flops_per_s / peak.bytes_per_s)
    assert peak.attainable(np.inf) == peak.flops_per_s


def test_kernel_names_drop_tvm_numbering():
    assert display_name("fused_conv2d21_add17_tir_sigmoid7_multiply7", "op") == "conv2d+add+sigmoid+multiply"
    assert display_name("fused_relax_nn_conv2d_whatever", "mbconv_block") == "mbconv_block"
