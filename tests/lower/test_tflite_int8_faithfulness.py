"""The layer-by-layer faithfulness check catches injected lowering faults, and passes a correct file.

Faults are injected into the int8 flatbuffer after lowering (int8_lowering_faults: a wrong
output scale, a wrong zero point, a transposed 3x3 filter, two channels' filter scales swapped,
a doubled bias), then the file is checked as verification checks it: run in the child process by LiteRT's
builtin kernels with every tensor kept, each layer against the QDQ graph fed the file's own
inputs to that layer.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgec.faithfulness import faithfulness_failures, layer_agreement
from edgec.fsutil import atomic_write_bytes
from edgec.lower.tflite import build_flatbuffer
from edgec.quantization import quantize_model
from edgec.runtimes.child import ChildRuntimes
from int8_lowering_faults import FAULTS
from tflite_cases import Case, node, rand, residual_classifier


def _model():
    return residual_classifier().model()


@pytest.fixture(scope="module")
def quantized():
    model = _model()
    rng = np.random.default_rng(0)
    samples = [[rng.standard_normal((1, 3, 10, 10)).astype(np.float32)] for _ in range(10)]
    qdq, info = quantize_model(model, samples[:8])
    return qdq, samples[8:]


def _check(qdq, samples, tmp_path, fault=None):
    data, ctx, _ = build_flatbuffer(qdq)
    if fault is not None:
        fault(ctx.graph)
        data = ctx.graph.serialize()
    path = tmp_path / "model.tflite"
    atomic_write_bytes(path, data)
    tensor_map = {n: [h.tensor, list(h.perm)] for n, h in ctx.quantized_values().items()}
    with ChildRuntimes() as child:
        layers = layer_agreement(qdq, tensor_map, samples, lambda s, t: child.intermediates(path, s, t))
    return layers, faithfulness_failures(layers)


def test_correct_file_is_faithful_layer_by_layer(quantized, tmp_path):
    qdq, samples = quantized
    layers, failures = _check(qdq, samples, tmp_path)
    assert failures == []
    assert {"r", "a", "s", "y"} <= set(layers)  # conv, conv, add, fully connected all compared
    assert min(v["agreement"] for v in layers.values()) >= 0.99


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_injected_fault_is_caught_at_its_layer(quantized, tmp_path, fault):
    qdq, samples = quantized
    layers, failures = _check(qdq, samples, tmp_path, FAULTS[fault])
    assert failures, layers
    expected = "y" if fault == "doubled_bias" else "a"
    assert f"layer '{expected}'" in failures[0], failures


def _guarded_division():
    """EfficientViT's linear attention: values divided by a non-negative sum + eps."""
    c = 8
    return Case(
        [node("MatMul", ["x", "w0"], ["num"]), node("Relu", ["d"], ["sum"]),
         node("Add", ["sum", "eps"], ["den"]), node("Div", ["num", "den"], ["q"]),
         node("MatMul", ["q", "w1"], ["y"])],
        {"x": (1, 6, c), "d": (1, 6, 1)},
        consts={"w0": rand(c, c, seed=2, scale=0.5), "w1": rand(c, 4, seed=3, scale=0.5),
                "eps": np.array(1e-3, np.float32)}).model()


def test_a_guarded_divisor_stays_float_and_the_file_is_faithful(tmp_path):
    # Half the sums are 0 (ReLU): in int8, 0 + eps would round to exactly 0 and the Div would
    # divide by zero (inf/NaN, which onnxruntime and LiteRT quantize differently).
    rng = np.random.default_rng(0)
    samples = [[rng.standard_normal((1, 6, 8)).astype(np.float32), rng.standard_normal((1, 6, 1)).astype(np.float32)]
               for _ in range(12)]
    qdq, info = quantize_model(_guarded_division(), samples[:8])
    floats = {f["node"]: f["why"] for f in info["float_nodes"]}
    assert any("divisor" in why for why in floats.values()), floats
    layers, failures = _check(qdq, samples[8:], tmp_path)
    assert failures == [] and "q" in layers  # the division's output compared, within 1 LSB


def _masked_attention():
    """Attention scores plus a mask of 0 / torch.finfo(float32).min (transformers' BERT), softmax."""
    return Case(
        [node("MatMul", ["x", "w0"], ["s"]), node("Add", ["s", "m"], ["sm"]), node("Softmax", ["sm"], ["p"], axis=-1),
         node("MatMul", ["p", "w1"], ["y"])],
        {"x": (1, 6, 8), "m": (1, 6, 6)},
        consts={"w0": rand(8, 6, seed=2, scale=0.5), "w1": rand(6, 4, seed=3, scale=0.5)}).model()


def test_an_infinite_mask_stays_float_and_the_file_loads(tmp_path):
    # Quantized, the mask's ~1e38 range gives the ADD a step of ~1e36 and LiteRT aborts (SIGABRT)
    # computing its requantization multipliers while preparing the file.
    rng = np.random.default_rng(0)
    low = np.finfo(np.float32).min
    samples = [[rng.standard_normal((1, 6, 8)).astype(np.float32),
                np.where(rng.random((1, 6, 6)) < 0.3, low, 0).astype(np.float32)] for _ in range(12)]
    qdq, info = quantize_model(_masked_attention(), samples[:8])
    floats = {f["op"] for f in info["float_nodes"] if "infinity" in f["why"]}
    assert floats == {"Add", "Softmax"}, info["float_nodes"]
    layers, failures = _check(qdq, samples[8:], tmp_path)
    assert failures == [] and "y" in layers
