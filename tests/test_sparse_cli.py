"""`edgec prune` as a user meets it: a .pt2 (or .onnx) in, the pruned model out, a table, clean errors."""

import json
import subprocess
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

import edgec
from edgec.cli import main

EDGEC = [sys.executable, "-m", "edgec.cli"]


def run(*args):
    return subprocess.run([*EDGEC, *map(str, args)], capture_output=True, text=True, timeout=300)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                         nn.Conv2d(8, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10)).eval()


def test_prune_pt2_writes_a_pruned_program_that_compiles_for_a_sparse_target(tmp_path):
    x = torch.randn(1, 3, 32, 32)
    torch.export.save(torch.export.export(_model(), (x,)), tmp_path / "m.pt2")
    proc = run("prune", tmp_path / "m.pt2", "--sparsity", "0.75", "--block", "4x1", "-o", tmp_path / "p.pt2",
               "--no-fc", "--json", tmp_path / "p.json")
    assert proc.returncode == 0, proc.stderr
    assert "3.weight" in proc.stdout and "left dense" in proc.stdout and "first convolution" in proc.stdout
    table = json.loads((tmp_path / "p.json").read_text())
    assert [layer["node"] for layer in table["layers"]] == ["3.weight"] and table["block"] == "4x1"
    w = torch.export.load(tmp_path / "p.pt2").state_dict["3.weight"]
    assert (w == 0).float().mean().item() == 0.75
    assert (torch.export.load(tmp_path / "p.pt2").state_dict["7.weight"] != 0).all()  # --no-fc

    art = edgec.compile(tmp_path / "p.pt2", target="wasm-sparse", out_dir=tmp_path / "out")
    sparse = art.report["artifacts"][0]["lowering"]["sparse"]
    # 75% of the only 1x1 conv's weights are zero, but the stem reads 3 channels at 32x32: it qualifies.
    assert sparse["xnnpack_sparse_inference"] is True, sparse["reasons"]


def test_prune_onnx_and_clean_errors(tmp_path, capsys):
    x = torch.randn(1, 3, 32, 32)
    torch.onnx.export(_model(), (x,), tmp_path / "m.onnx", dynamo=True)
    assert main(["prune", str(tmp_path / "m.onnx"), "-s", "0.5", "-o", str(tmp_path / "p.onnx")]) == 0
    model = onnx.load(tmp_path / "p.onnx")
    weights = [t for t in model.graph.initializer if list(t.dims[-2:]) in ([1, 1], [10, 16])]  # 1x1 conv, FC
    zero = [np.mean(numpy_helper.to_array(t) == 0) for t in weights]
    assert zero and all(z == 0.5 for z in zero)

    for args, fragment in [(("-s", "0.9", "-b", "3x1"), "XNNPACK's sparse kernels take 1x1, 2x1, 4x1"),
                           (("-s", "1.5", "-b", "4x1"), "sparsity 1.5"),
                           (("-s", "0.9", "-o", tmp_path / "p.pt2"), "in the input's format")]:
        out = [] if "-o" in args else ["-o", tmp_path / "q.onnx"]
        capsys.readouterr()
        assert main(["prune", str(tmp_path / "m.onnx"), *map(str, args), *map(str, out)]) == 2
        assert fragment in " ".join(capsys.readouterr().err.split())


def test_prune_accepts_zoo_sources_like_compile(tmp_path):
    import torch

    out = tmp_path / "mlp_pruned.pt2"
    assert main(["prune", "zoo:mlp?hidden=64", "-s", "0.75", "-o", str(out)]) == 0
    program = torch.export.load(str(out))
    hidden = [t for n, t in program.state_dict.items() if n.endswith("weight") and t.shape[0] == 64]
    assert hidden and all(abs(float((t == 0).float().mean()) - 0.75) < 0.02 for t in hidden)
    assert main(["prune", "zoo:mlp", "-s", "0.5", "-o", str(tmp_path / "x.onnx")]) == 2
