"""int8 parameters XNNPACK's kernels accept: degenerate (all-zero) tensors get usable scales,
and a file whose parameters XNNPACK would refuse is never written, with the layer named.

The residual block is the timm pattern: the block's last BatchNorm is zero-initialised, so
after folding its conv has all-zero weights and an all-zero output that is added to the
block's input. Before the fix that output got a scale of ~4e-9 and the file did not load
("failed to prepare").
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgec.lower.tflite import build_flatbuffer, lower_tflite
from edgec.lower.tflite.kernel_limits import (
    KernelLimitError, check_kernel_limits, delegation_limit_misses, kernel_limit_violations,
)
from edgec.quantization import quantize_model
from edgec.quantization.scheme import weight_qparams
from edgec.runtimes.litert import LiteRTRuntime
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.targets import get_target
from tflite_cases import Case, node, rand

TARGET = get_target("x86_64-int8")


def residual_block_with_zero_branch(zero_bias: bool = True) -> Case:
    c = 8
    return Case(
        [node("Conv", ["x", "w0", "b0"], ["h"], pads=[1, 1, 1, 1]), node("Relu", ["h"], ["r"]),
         node("Conv", ["r", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]), node("Relu", ["a"], ["ar"]),
         node("Conv", ["ar", "w2", "b2"], ["z"], pads=[1, 1, 1, 1]),  # BatchNorm(gamma=0) folded in
         node("Add", ["r", "z"], ["s"]), node("Relu", ["s"], ["y"])],
        {"x": (1, 3, 12, 12)},
        consts={"w0": rand(c, 3, 3, 3, seed=2, scale=0.5), "b0": rand(c, seed=3, scale=0.1),
                "w1": rand(c, c, 3, 3, seed=4, scale=0.2), "b1": rand(c, seed=5, scale=0.1),
                "w2": np.zeros((c, c, 3, 3), np.float32),
                "b2": np.zeros(c, np.float32) if zero_bias else rand(c, seed=6, scale=0.1)})


def _samples(model, n, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(v.shape.numpy()).astype(np.float32) for v in model.graph.inputs] for _ in range(n)]


def test_zero_branch_of_a_residual_block_compiles_to_a_loadable_int8_file(tmp_path):
    model = residual_block_with_zero_branch().model()
    qdq, info = quantize_model(model, _samples(model, 8))
    assert "z" in info["zero_range_tensors"]
    z = info["activations"]["z"]
    # Scaled like the conv's input, not ~1e-9: XNNPACK's add needs z's scale / y's scale >= 2^-10.
    assert z["scale"] == pytest.approx(info["activations"]["ar"]["scale"])
    assert 2 ** -10 <= z["scale"] / info["activations"]["y"]["scale"] < 2 ** 8  # Add+Relu fused: y
    path = tmp_path / "block.tflite"
    lower_tflite(qdq, TARGET, path)
    runtime = LiteRTRuntime(path)  # raised "failed to prepare" before
    assert runtime.delegation()["fraction"] == 1.0
    reference = OnnxRuntime.from_ir(qdq, optimize=False)
    step = info["activations"]["y"]["scale"]
    for x in _samples(model, 3, seed=1):
        got, want = runtime.run(x)[0], reference.run(x)[0]
        assert np.mean(np.abs(got - want) <= step * 1.001) >= 0.99


def test_all_zero_weight_channels_take_a_real_channels_scale():
    w = rand(4, 3, 3, 3)
    w[1] = 0.0
    p = weight_qparams(w, 0)
    assert p.scale[1] == p.scale[[0, 2, 3]].max()
    assert weight_qparams(np.zeros_like(w), 0).scale.tolist() == [pytest.approx(1 / 127)] * 4


def _conv_output_scale(graph, scale: float) -> str:
    """Set the first CONV_2D's output scale; returns the output tensor's name."""
    for op in graph.operators:
        if graph.op_name(op) == "CONV_2D":
            out = graph.tensors[op.outputs[0]]
            out.quantization.scale = [scale]
            return out.name
    raise AssertionError("no CONV_2D")


def test_out_of_range_requantization_is_refused_naming_the_layer(tmp_path):
    model = residual_block_with_zero_branch(zero_bias=False).model()
    qdq, _ = quantize_model(model, _samples(model, 8))
    _, ctx, _ = build_flatbuffer(qdq)
    assert kernel_limit_violations(ctx.graph) == []
    name = _conv_output_scale(ctx.graph, 1e-9)  # what a degenerate range used to give
    problems = kernel_limit_violations(ctx.graph)
    assert any(f"CONV_2D '{name}'" in p and "2^-32, 2^8)" in p for p in problems), problems
    with pytest.raises(KernelLimitError, match=f"CONV_2D '{name}'.*filter scale / output scale"):
        check_kernel_limits(ctx.graph, TARGET.name)


def test_add_and_mul_ratios_out_of_xnnpack_range_are_reported_not_fatal(tmp_path):
    model = Case([node("Add", ["a", "b"], ["s"]), node("Mul", ["s", "b"], ["y"])],
                 {"a": (1, 8), "b": (1, 8)}).model()
    qdq, _ = quantize_model(model, _samples(model, 8))
    _, ctx, _ = build_flatbuffer(qdq)
    graph = ctx.graph
    assert kernel_limit_violations(graph) == [] and delegation_limit_misses(graph) == []
    ops = {graph.op_name(op): op for op in graph.operators}
    graph.tensors[ops["ADD"].outputs[0]].quantization.scale = [1e3]
    declined = delegation_limit_misses(graph)
    assert any(p.startswith("ADD") and "input 0 scale / output scale" in p for p in declined), declined
    assert kernel_limit_violations(graph) == []
    # XNNPACK's delegate leaves such an ADD to the builtin kernels: the file still loads.
    path = tmp_path / "add.tflite"
    path.write_bytes(graph.serialize())
    assert "ADD" in LiteRTRuntime(path).delegation()["not_delegated"]
    graph.tensors[ops["ADD"].outputs[0]].quantization.scale = [1e-9]
    assert any(p.startswith("MUL") and "product / output scale" in p for p in delegation_limit_misses(graph))
    graph.tensors[ops["ADD"].outputs[0]].quantization.scale = [0.0]
    assert any("not a positive normal float" in p for p in kernel_limit_violations(graph))


def test_lowering_writes_no_file_when_a_limit_is_broken(tmp_path, monkeypatch):
    import edgec.lower.tflite as tflite

    model = residual_block_with_zero_branch(zero_bias=False).model()
    qdq, _ = quantize_model(model, _samples(model, 8))
    real = tflite.build_flatbuffer

    def broken(*args, **kwargs):
        data, ctx, fusions = real(*args, **kwargs)
        _conv_output_scale(ctx.graph, 1e-9)
        return data, ctx, fusions

    monkeypatch.setattr(tflite, "build_flatbuffer", broken)
    path = tmp_path / "block.tflite"
    with pytest.raises(KernelLimitError, match="no artifact written"):
        lower_tflite(qdq, TARGET, path)
    assert not path.exists()
