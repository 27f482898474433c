"""The XNNPACK-eligibility check (edgec.analyze.sparse) on a model that qualifies and on ones
that do not, each for the reason XNNPACK's xnn_subgraph_rewrite_for_nchw would refuse it."""

import numpy as np
import pytest
from onnx import helper

from edgec.passes import get_pass
from edgec.passes.prune import MagnitudePrune, magnitude_mask
from edgec.analyze.sparse import analyze, xnnpack_block
from helpers import build_model, random_weight


def _net(*, channels=3, stem=None, extra_output=False, sparsity=0.9):
    """MobileNet-like: stem 3x3/2 -> dw 3x3 -> 1x1 -> dw 3x3/2 -> 1x1 (+ residual) -> GAP -> FC.

    stem: attributes of the stem conv (default stride 2, pads 1). extra_output: the first
    1x1 conv's output is also a graph output (a branch leaving the region).
    """
    stem = stem or {"strides": [2, 2], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], name="stem", **stem),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "wd1"], ["d1"], group=8, pads=[1, 1, 1, 1], name="dw1"),
        helper.make_node("Conv", ["d1", "w1"], ["p1"], name="pw1"),
        helper.make_node("Clip", ["p1", "lo", "hi"], ["a1"]),
        helper.make_node("Conv", ["a1", "wd2"], ["d2"], group=16, strides=[2, 2], pads=[1, 1, 1, 1], name="dw2"),
        helper.make_node("Conv", ["d2", "w2"], ["p2"], name="pw2"),
        helper.make_node("Add", ["p2", "d2"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1, name="fc"),
    ]
    w1, w2 = random_weight(16, 8, 1, 1, seed=3), random_weight(16, 16, 1, 1, seed=4)
    for w in (w1, w2):
        w *= magnitude_mask(w.reshape(16, -1), sparsity).reshape(w.shape)
    init = {"w0": random_weight(8, channels, 3, 3, seed=1), "wd1": random_weight(8, 1, 3, 3, seed=2),
            "w1": w1, "wd2": random_weight(16, 1, 3, 3, seed=5), "w2": w2, "wf": random_weight(10, 16, seed=6),
            "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    outputs = ["y", "p1"] if extra_output else ["y"]
    model = build_model(nodes, {"x": [1, channels, 16, 16]}, outputs, init)
    return get_pass("shape_inference")(model).model  # as in every target recipe


def test_a_pruned_mobilenet_like_model_qualifies():
    report = analyze(_net())
    assert report.qualifies and report.reasons == []
    (region,) = report.regions
    assert region.entry == ["stem"] and len(region.exit) == 1 and region.nodes == 9
    assert region.zero_fraction == pytest.approx(0.9, abs=0.01)
    layers = {layer.node: layer for layer in report.layers}
    assert layers["pw1"].region == 0 and layers["pw1"].sparsity == pytest.approx(0.9, abs=0.01)
    assert layers["fc"].region is None  # after Flatten: outside the NCHW region
    assert report.as_dict()["xnnpack_sparse_inference"] is True
    assert "yes" in report.summary()


def test_same_padding_on_the_stride_2_stem_does_not_qualify():
    report = analyze(_net(stem={"strides": [2, 2], "auto_pad": "SAME_UPPER"}))
    assert not report.qualifies
    text = " ".join(report.reasons)
    assert "'stem'" in text and "0/0/1/1" in text and "SAME padding on a stride-2 conv" in text


def test_a_branch_leaving_the_region_does_not_qualify():
    report = analyze(_net(extra_output=True))
    assert not report.qualifies
    assert any("'p1' inside the region is also a graph output" in r for r in report.reasons)


def test_too_few_zeros_and_a_one_channel_stem_do_not_qualify():
    sparse_enough = analyze(_net(sparsity=0.6))
    assert not sparse_enough.qualifies
    assert any("XNNPACK needs more than 66.7%" in r for r in sparse_enough.reasons)
    gray = analyze(_net(channels=1))
    assert not gray.qualifies
    assert any("reads 1 channel(s); XNNPACK's NCHW entry conv needs exactly 3" in r for r in gray.reasons)


def test_block_shape_follows_xnnpacks_90_percent_rule():
    w = random_weight(32, 24, seed=7)
    assert xnnpack_block(w * magnitude_mask(w, 0.8, (4, 1))) == "4x1"
    assert xnnpack_block(w * magnitude_mask(w, 0.8, (2, 1))) == "2x1"
    assert xnnpack_block(w * magnitude_mask(w, 0.8, (1, 1))) == "1x1"


def test_zoo_mobilenets_qualify_after_pruning_and_resnet_does_not(zoo_ir):
    for name in ("mobilenet_v1", "mobilenet_v2"):
        model = zoo_ir(name)
        assert not analyze(model).qualifies  # dense: too few zeros
        MagnitudePrune(0.8)(model)
        report = analyze(model)
        assert report.qualifies, report.reasons
        assert all(layer.region == 0 for layer in report.layers if layer.op == "Conv")
    resnet = zoo_ir("resnet18")
    MagnitudePrune(0.9)(resnet)
    report = analyze(resnet)
    assert not report.qualifies
    # the 3x3 stride-1 convs next to the exit already stop the region, long before MaxPool
    assert any("3x3 conv with strides [1, 1]" in r for r in report.reasons)


@pytest.fixture
def zoo_ir():
    from edgec import zoo
    from edgec.frontends import load_model
    from edgec.passes import run_passes
    from edgec.targets import get_target

    def build(name):
        m = zoo.build(name, resolution=64, num_classes=10, **({"width": 0.5} if name != "resnet18" else {}))
        imported = load_model(m.module, example_inputs=m.example_inputs)
        model, _ = run_passes(imported.model, list(get_target("wasm-sparse").passes))
        return model

    return build
