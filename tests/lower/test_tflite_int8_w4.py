"""W4A8: int4 weights (INT4 initializers behind DequantizeLinear) lowered to TFLite INT4 tensors.

LiteRT reads int4 filters in CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED, packed two per
byte; TRANSPOSE_CONV has no int4 variant, so its weights are widened to int8 (exactly).
Activations stay int8, and the artifact must still agree with onnxruntime's QDQ graph within
1 LSB on both LiteRT paths. XNNPACK takes int4 FULLY_CONNECTED but leaves int4 convolutions
to LiteRT's own kernels (asserted, so a LiteRT upgrade that changes it is noticed).
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgec import zoo
from edgec.frontends import load_model
from edgec.lower.tflite.quantized import pack_int4
from edgec.passes import run_passes
from edgec.quantization import quantize_model
from tflite_cases import CASES, Case, node, rand
from test_tflite_int8 import (
    MIN_LSB_AGREEMENT, lower_and_run, ops_of, per_tensor_agreement, random_samples, read_flatbuffer,
)

INT4_CASES = {
    # name -> (op, the weight tensor's type in the flatbuffer, ops XNNPACK leaves to LiteRT)
    "conv_same": ("CONV_2D", schema.TensorType.INT4, {"CONV_2D"}),
    "grouped_conv": ("CONV_2D", schema.TensorType.INT4, {"CONV_2D"}),
    "depthwise_stride2_multiplier2": ("DEPTHWISE_CONV_2D", schema.TensorType.INT4, {"DEPTHWISE_CONV_2D"}),
    "gemm_transB_bias": ("FULLY_CONNECTED", schema.TensorType.INT4, set()),
    "matmul_3d_const_with_bias_add": ("FULLY_CONNECTED", schema.TensorType.INT4, set()),
    "conv_transpose_k4s2p1": ("TRANSPOSE_CONV", schema.TensorType.INT8, set()),
}


def _quantize_w4(model):
    return quantize_model(model, random_samples(model, 16), weight_bits=4)


@pytest.mark.parametrize("name", sorted(INT4_CASES))
def test_int4_weights_run_within_one_lsb(name, tmp_path):
    op, weight_type, cpu_ops = INT4_CASES[name]
    model = CASES[name].model()
    qdq, info = _quantize_w4(model)
    run = lower_and_run(qdq, info, tmp_path / f"{name}.tflite", random_samples(model, 2, seed=7))

    assert run.agreement["xnnpack"] >= MIN_LSB_AGREEMENT, run.agreement
    assert run.agreement["builtin"] >= MIN_LSB_AGREEMENT, run.agreement
    fb, graph = read_flatbuffer(run.path)
    weights = graph.tensors[ops_of(fb, graph, op)[0].inputs[1]]
    assert weights.type == weight_type
    assert set(run.delegation["not_delegated"]) == cpu_ops


def test_int4_weights_are_packed_two_per_byte_low_nibble_first(tmp_path):
    # 3 output channels x 3 x 3: an odd element count, so the last byte holds one value.
    case = Case([node("Conv", ["x", "dw"], group=3, pads=[1, 1, 1, 1])], {"x": (1, 3, 6, 6)},
                consts={"dw": rand(3, 1, 3, 3)})
    model = case.model()
    qdq, info = _quantize_w4(model)
    run = lower_and_run(qdq, info, tmp_path / "dw.tflite", random_samples(model, 1, seed=7))

    stored = next(v for v in qdq.graph.initializers.values() if v.name.endswith("weight/quantized"))
    values = stored.const_value.numpy().astype(np.int8)  # ONNX [O, 1, kh, kw]
    fb, graph = read_flatbuffer(run.path)
    weights = graph.tensors[ops_of(fb, graph, "DEPTHWISE_CONV_2D")[0].inputs[1]]
    packed = np.asarray(fb.buffers[weights.buffer].data, np.uint8)
    assert len(packed) == 14  # ceil(27 / 2)
    np.testing.assert_array_equal(packed, pack_int4(values.transpose(1, 2, 3, 0)))  # 1HWO
    low = (packed & 0x0F).astype(np.int8)
    assert np.array_equal(np.where(low > 7, low - 16, low)[:3], values.transpose(1, 2, 3, 0).reshape(-1)[0:6:2])
    assert weights.quantization.quantizedDimension == 3
    assert run.agreement["builtin"] >= MIN_LSB_AGREEMENT


@pytest.mark.parametrize("name, options", [("mlp", {}), ("mobilenet_v1", dict(resolution=32, num_classes=10, width=0.5))])
def test_int4_file_is_at_most_six_tenths_of_int8(name, options, tmp_path):
    z = zoo.build(name, **options)
    model = load_model(z.module, example_inputs=z.example_inputs).model
    model, _ = run_passes(model, ["constant_folding", "remove_identity", "fold_batchnorm", "constant_folding",
                                  "shape_inference"])
    calibration = random_samples(model, 32)
    inputs = random_samples(model, 1, seed=7)
    sizes = {}
    for bits in (8, 4):
        qdq, info = quantize_model(model, calibration, weight_bits=bits)
        run = lower_and_run(qdq, info, tmp_path / f"{name}.w{bits}.tflite", inputs, builtin=False)
        sizes[bits] = run.report["size_bytes"]
    assert run.report["quantized"]["int4_tensors"] > 0
    assert sizes[4] <= 0.6 * sizes[8], sizes
    # Layer by layer (LiteRT's int4 convolutions run on its own kernels, whose rounding
    # differs from onnxruntime's on ties; end to end that spreads through a deep network).
    agreement = per_tensor_agreement(qdq, inputs[0], tmp_path)
    assert min(agreement.values()) >= MIN_LSB_AGREEMENT, min(agreement.items(), key=lambda kv: kv[1])
