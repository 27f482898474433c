"""int8 convs on AVX-512 VNNI (edgec/lower/tvm/int8_dot.py), target x86_64-int8-vnni.

Structure: on a VNNI target a dense int8 conv becomes the packed u8 x i8 -> i32 kernel and the
built library contains `vpdpbusd`; depthwise convs and targets without VNNI keep the portable
int8 x int8 conv. Numerics: the library agrees with onnxruntime's QDQ reference as the
portable lowering does, and its outputs are bit-identical to the portable lowering's (the +128
shift and its folded correction change no integer). Running needs a host CPU with AVX-512
VNNI; elsewhere only the build is checked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tvm
from onnx import helper

from edgec.ir import to_proto
from edgec.lower.tvm import int8_dot, lower_tvm
from edgec.lower.tvm.importer import import_onnx
from edgec.lower.tvm.pipeline import tvm_target_of
from edgec.lower.tvm.qdq import integer_summary, legalize_qdq
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.runtimes.qemu import QemuRuntime, qemu_status
from edgec.runtimes.tvmrt import TVMRuntime
from edgec.targets import get_target

from test_tvm_int8 import (CASES, MIN_EXACT, X, asymmetric_samples, calls, compare_with_reference,
                            dtype, float_model, quantize, weights)

VNNI = get_target("x86_64-int8-vnni")
SDOT = get_target("arm64-int8-dotprod")
PORTABLE = get_target("x86_64-int8")
N = helper.make_node


def _host_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((l for l in text.splitlines() if l.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


HOST_HAS_VNNI = {"avx512_vnni", "avx512bw", "avx512f"} <= _host_flags()
needs_vnni_host = pytest.mark.skipif(not HOST_HAS_VNNI, reason="host CPU lacks AVX-512 VNNI: the library cannot run here")

# Channel counts that are not whole 4-byte / 16-lane blocks, as in MobileNet v2's stem (3 -> 32)
# and its 24-channel layers; stride, dilation and asymmetric padding.
DOT_CASES = {
    "conv_bias_relu6_padded": CASES["conv_bias_relu6_padded"][:3],
    "conv_strided_no_bias_relu": CASES["conv_strided_no_bias_relu"][:3],
    "conv_then_global_average_pool": CASES["conv_then_global_average_pool"][:3],
    # A 2-D Gemm/MatMul with constant weights runs as a 1x1 dot-product conv (counted as one).
    "gemm": CASES["gemm"][:3],
    "gemm_transposed_weight_relu": CASES["gemm_transposed_weight_relu"][:3],
    "conv_3_to_24_channels_strided_dilated": (
        [N("Conv", ["x", "w", "b"], ["y"], strides=[2, 2], dilations=[2, 1], pads=[2, 1, 1, 0])],
        {"x": (1, 3, 13, 12)}, {"w": weights(24, 3, 3, 3), "b": weights(24, 1, seed=6).ravel()}),
}


def legalized(qdq, target) -> tvm.IRModule:
    with tvm_target_of(target):
        return legalize_qdq()(import_onnx(to_proto(qdq), target.name))


def test_only_targets_with_vnni_use_the_dot_product():
    assert int8_dot.has_int8_dot(tvm_target_of(VNNI))
    assert not int8_dot.has_int8_dot(tvm_target_of(PORTABLE))  # x86-64-v3: AVX2 only
    assert int8_dot.dot_product_of(tvm_target_of(VNNI)) is int8_dot.VNNI
    assert not int8_dot.has_int8_dot(tvm_target_of(get_target("arm64-int8")))  # NEON without +dotprod
    assert int8_dot.dot_product_of(tvm_target_of(SDOT)) is int8_dot.SDOT
    assert not int8_dot.has_int8_dot(None)


def test_dense_conv_takes_the_unsigned_packed_form_and_depthwise_does_not():
    nodes, inputs, consts = DOT_CASES["conv_bias_relu6_padded"]
    qdq, _ = quantize(float_model(nodes, inputs, consts))
    mod = legalized(qdq, VNNI)
    assert not calls(mod, "relax.nn.conv2d") and integer_summary(mod)["integer_convs"] == 1
    (conv,) = [c for c in calls(mod, "relax.call_tir") if c.args[0].name_hint.startswith(int8_dot.CONV_NAME)]
    data, weight = (dtype(a) for a in list(conv.args[1].fields)[:2])
    assert (data, weight, dtype(conv)) == ("uint8", "int8", "int8")
    # The portable target keeps int8 x int8 conv2d.
    assert len(calls(legalized(qdq, PORTABLE), "relax.nn.conv2d")) == 1

    nodes, inputs, consts, _, _ = CASES["conv_depthwise"]
    qdq, _ = quantize(float_model(nodes, inputs, consts))
    assert len(calls(legalized(qdq, VNNI), "relax.nn.conv2d")) == 1


def test_packed_weight_layout():
    w = np.arange(24 * 3 * 2 * 1, dtype=np.int64).reshape(24, 3, 2, 1).astype(np.int8)
    packed = int8_dot.pack_weight(w, lanes=16)
    assert packed.shape == (2, 1, 2, 1, 16, 4)
    o, c, y = 17, 2, 1  # [O/16, C/4, KH, KW, 16, 4]
    assert packed[o // 16, c // 4, y, 0, o % 16, c % 4] == w[o, c, y, 0]
    assert not packed[1, :, :, :, 8:].any() and not packed[..., 3].any()  # padded channels are 0


def _matches_reference_and_portable(qdq, info, tmp_path, seed: int) -> dict:
    """The VNNI library agrees with onnxruntime's QDQ reference, and computes the same integers
    as the portable int8 x int8 lowering, bit for bit. Returns the VNNI build's report."""
    report, within_one, exact = compare_with_reference(qdq, info, tmp_path / "m.so", target=VNNI)
    assert within_one == 1.0 and exact >= MIN_EXACT, (within_one, exact)
    lower_tvm(qdq, PORTABLE, tmp_path / "p.so")
    vnni, portable = TVMRuntime(tmp_path / "m.so"), TVMRuntime(tmp_path / "p.so")
    for sample in asymmetric_samples(qdq, 2, seed=seed):
        np.testing.assert_array_equal(vnni.run(sample)[0], portable.run(sample)[0])
    return report


@pytest.mark.parametrize("case", sorted(DOT_CASES))
def test_vnni_library_uses_vpdpbusd_and_matches_the_reference(case, tmp_path):
    nodes, inputs, consts = DOT_CASES[case]
    qdq, info = quantize(float_model(nodes, inputs, consts))
    if not HOST_HAS_VNNI:
        report = lower_tvm(qdq, VNNI, tmp_path / "m.so")
    else:
        report = _matches_reference_and_portable(qdq, info, tmp_path, seed=3)
    assert report["int8"]["integer_convs"] == 1
    if shutil.which("objdump"):
        disassembly = subprocess.run(["objdump", "-d", str(tmp_path / "m.so")], capture_output=True,
                                     text=True, check=True).stdout
        assert "vpdpbusd" in disassembly


@needs_vnni_host
def test_residual_block_with_float_island_matches_the_reference(tmp_path):
    # conv -> conv + skip: the Add is a float island fused behind the second dot-product conv.
    nodes = [N("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), N("Relu", ["a"], ["r"]),
             N("Conv", ["r", "w2"], ["b"]), N("Add", ["b", "x"], ["y"])]
    model = float_model(nodes, X, {"w1": weights(16, 8, 3, 3), "w2": weights(8, 16, 1, 1, seed=1)})
    qdq, info = quantize(model)
    report, within_one, exact = compare_with_reference(qdq, info, tmp_path / "m.so", target=VNNI)
    assert report["int8"]["integer_convs"] == 2
    assert within_one == 1.0 and exact >= MIN_EXACT, (within_one, exact)


def _inverted_residual():
    """MobileNet v2's block: 1x1 expand -> ReLU6 -> 3x3 depthwise -> ReLU6 -> 1x1 project, + skip,
    behind a 1x1 conv (so the skip is a conv output too) and before a second block's expand."""
    clip = {"min": 0.0, "max": 6.0}
    nodes = [N("Conv", ["x", "w0"], ["s"]),
             N("Conv", ["s", "w1"], ["e"]), N("Clip", ["e", "lo", "hi"], ["er"]),
             N("Conv", ["er", "wd"], ["d"], group=32, pads=[1, 1, 1, 1]), N("Clip", ["d", "lo", "hi"], ["dr"]),
             N("Conv", ["dr", "w2"], ["p"]), N("Add", ["p", "s"], ["r"]),
             N("Conv", ["r", "w3"], ["y"])]
    consts = {"w0": weights(8, 8, 1, 1), "w1": weights(32, 8, 1, 1, seed=1), "wd": weights(32, 1, 3, 3, seed=2),
              "w2": weights(8, 32, 1, 1, seed=3), "w3": weights(16, 8, 1, 1, seed=4),
              "lo": np.array(clip["min"], np.float32), "hi": np.array(clip["max"], np.float32)}
    return float_model(nodes, X, consts)


def test_channels_last_convs_keep_no_transposes_between_them(tmp_path):
    """Each int8 conv is emitted between two transposes; between consecutive convs, and across
    the residual add's float island, they cancel (transposes.py): one stays at each end."""
    qdq, info = quantize(_inverted_residual())
    mod = legalized(qdq, VNNI)
    assert integer_summary(mod)["integer_convs"] == 5
    assert len(calls(mod, "relax.permute_dims")) == 2
    # The dot-product convs read channels-last data too ([N, H, W, C], not packed [N, C/4, H, W, 4]).
    packs = [c for c in calls(mod, "relax.call_tir") if c.args[0].name_hint.startswith("pack_dot")]
    assert len(packs) == 4 and all(len(p.ty.shape.values) == 4 for p in packs)
    assert integer_summary(mod)["float_ops"].get("relax.permute_dims") is None  # on int8 tensors
    if HOST_HAS_VNNI:
        _matches_reference_and_portable(qdq, info, tmp_path, seed=5)


needs_cross_compiler = pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None,
                                          reason="aarch64 cross compiler missing: apt-get install g++-aarch64-linux-gnu")


@pytest.mark.arm64
@needs_cross_compiler
def test_arm64_dotprod_library_uses_sdot(tmp_path):
    nodes, inputs, consts = DOT_CASES["conv_3_to_24_channels_strided_dilated"]
    qdq, _ = quantize(float_model(nodes, inputs, consts))
    report = lower_tvm(qdq, SDOT, tmp_path / "m.so")
    assert report["int8"]["integer_convs"] == 1
    objdump = shutil.which("aarch64-linux-gnu-objdump")
    if objdump is None:
        pytest.skip("aarch64-linux-gnu-objdump missing: cannot read the library's instructions")
    disassembly = subprocess.run([objdump, "-d", str(tmp_path / "m.so")], capture_output=True,
                                 text=True, check=True).stdout
    assert "sdot" in disassembly


@pytest.mark.slow  # two cross-compiles and two libraries under qemu: ~40 s
@pytest.mark.arm64
@needs_cross_compiler
def test_arm64_dotprod_library_matches_under_qemu(tmp_path):
    nodes, inputs, consts = DOT_CASES["conv_3_to_24_channels_strided_dilated"]
    qdq, info = quantize(float_model(nodes, inputs, consts))
    reachable, why = qemu_status()
    if not reachable:
        pytest.skip(f"cannot run the aarch64 library here: {why}")
    lower_tvm(qdq, SDOT, tmp_path / "m.so")
    lower_tvm(qdq, get_target("arm64-int8"), tmp_path / "p.so")
    dotprod, portable = QemuRuntime(tmp_path / "m.so"), QemuRuntime(tmp_path / "p.so")
    reference = OnnxRuntime.from_ir(qdq, optimize=False)
    step = info["activations"]["y"]["scale"]
    sample = asymmetric_samples(qdq, 1, seed=3)[0]
    got = dotprod.run(sample)[0]
    np.testing.assert_array_equal(got, portable.run(sample)[0])  # the same integers
    assert np.mean(np.abs(got - reference.run(sample)[0]) <= 1.001 * step) == 1.0
