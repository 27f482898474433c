"""Proof that XNNPACK takes the sparse path: LiteRT.js (XNNPACK in WebAssembly, under Node)
runs the pruned MobileNet's wasm-sparse artifact much faster than the dense one, and the
eligibility report's "no" (a branch leaving the region) shows up as no speedup at all.

XNNPACK logs its switch to sparse inference only in debug builds, so timing is the signal:
dense and sparse are timed interleaved in one Node process. On x86 with AVX the native
XNNPACK never goes sparse, which is why this runs on wasm.
"""

import copy

import pytest
import torch
from torch import nn

import edgec
from edgec.bench import benchmark_vs
from edgec.runtimes.wasm import wasm_status
from edgec.training import pruning

ok, why = wasm_status("node")
pytestmark = pytest.mark.skipif(not ok, reason=f"node-wasm unavailable: {why}")

RESOLUTION = 128  # keeps the test short; the 224 figures are in benchmarks/bench_sparse.py


class WithFeatures(nn.Module):
    """The same network, also returning its last feature map: a value inside XNNPACK's NCHW
    region that leaves it, so XNNPACK must refuse the region."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        features = self.net.features(x)
        return self.net.classifier(torch.flatten(self.net.pool(features), 1)), features


def test_sparse_artifact_runs_much_faster_on_wasm_only_when_the_region_qualifies(tmp_path):
    from edgec import zoo

    m = zoo.build("mobilenet_v1", resolution=RESOLUTION)
    dense = edgec.compile(m.module, example_inputs=m.example_inputs, target="arm64-fp32", out_dir=tmp_path,
                          name="dense", formats=("tflite",))
    pruned = copy.deepcopy(m.module)
    pruning.prune(pruned, 0.9, "1x1", fc=False)  # unstructured: XNNPACK's wasm block kernels are scalar
    sparse = edgec.compile(pruned, example_inputs=m.example_inputs, target="wasm-sparse", out_dir=tmp_path,
                           name="sparse")
    branch = edgec.compile(WithFeatures(pruned).eval(), example_inputs=m.example_inputs, target="wasm-sparse",
                           out_dir=tmp_path, name="branch")

    assert sparse.report["artifacts"][0]["lowering"]["sparse"]["xnnpack_sparse_inference"] is True
    refused = branch.report["artifacts"][0]["lowering"]["sparse"]
    assert refused["xnnpack_sparse_inference"] is False
    assert any("graph output" in r for r in refused["reasons"]), refused["reasons"]

    # Paired medians (dense and sparse interleaved): about 0.25 and 1.0 here; the limits leave
    # room for a busy machine, and a wrong prediction or a dense fallback lands far outside them.
    fast = benchmark_vs(dense.paths["tflite"], sparse.paths["tflite"], device="node-wasm", runs=15, warmup=3)
    print(f"sparse/dense {fast.ratio.ratio:.3f} {fast.ratio.ci}")
    assert fast.ratio.ratio < 0.5, f"sparse/dense {fast.ratio.ratio:.2f} {fast.ratio.ci}: no wide margin"
    same = benchmark_vs(dense.paths["tflite"], branch.paths["tflite"], device="node-wasm", runs=15, warmup=3)
    print(f"branch/dense {same.ratio.ratio:.3f} {same.ratio.ci}")
    assert same.ratio.ratio > 0.8, f"sparse path taken although predicted not to be: {same.ratio.ratio:.2f}"
