"""Every op the TFLite lowering supports, checked numerically against onnxruntime.

Each case (tflite_cases.CASES) is lowered, run in LiteRT with XNNPACK, and compared with
onnxruntime on the same inputs; the test also checks the ops that show the intended lowering
(e.g. SAME padding instead of PAD, a bias Add folded into FULLY_CONNECTED) and that XNNPACK
took every operator except those the case names as CPU-only.
"""

from __future__ import annotations

import pytest

from tflite_cases import CASES, lower_and_compare

# float32 kernels differ from onnxruntime's only by summation order.
REL_TOLERANCE = 1e-5

# Cases also run on LiteRT's own kernels: grouped conv, padding/crop rewrites and the
# decompositions must be valid TFLite, not only something XNNPACK happens to accept.
WITHOUT_XNNPACK = [
    "conv_stride2_pad1", "depthwise_stride2_multiplier2", "grouped_conv", "conv_transpose_k3s2p1_outpad1",
    "gemm_transA_alpha_beta", "matmul_transposed_operand", "prelu_channel", "gelu_erf_pattern", "hard_sigmoid",
    "elu_alpha_2", "max_of_three_broadcast", "maxpool_k3s2p1", "avgpool_k3s2p1_exclude_pad", "avgpool_ceil", "layer_norm_last", "resize_linear_half_pixel",
    "resize_nearest_half_pixel", "split_sizes", "slice_negative_step", "pad_reflect",
]


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_onnxruntime_under_xnnpack(name, tmp_path):
    case = CASES[name]
    result = lower_and_compare(case.model(), tmp_path / f"{name}.tflite")

    assert result.rel_error <= REL_TOLERANCE, f"max |litert - onnxruntime| = {result.max_abs_error:.3g}"
    ops = result.report["ops"]
    for op, count in case.ops.items():
        assert ops.get(op, 0) == count, f"expected {count} {op}, lowered to {ops}"
    left_on_cpu = set(result.delegation["not_delegated"])
    assert left_on_cpu <= set(case.cpu_ops), f"XNNPACK left {sorted(left_on_cpu)} on the CPU kernels"
    if not case.cpu_ops:
        assert result.delegation["fraction"] == 1.0


@pytest.mark.parametrize("name", WITHOUT_XNNPACK)
def test_op_matches_onnxruntime_on_builtin_kernels(name, tmp_path):
    result = lower_and_compare(CASES[name].model(), tmp_path / f"{name}.tflite", xnnpack=False)

    assert result.delegation["delegated"] == 0
    assert result.rel_error <= REL_TOLERANCE, f"max |litert - onnxruntime| = {result.max_abs_error:.3g}"
