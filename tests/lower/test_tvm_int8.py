"""TVM int8 lowering of QDQ graphs (edgec/lower/tvm/qdq.py): integer compute, checked two ways.

Structure: the Relax module after the rewrite must hold conv2d/matmul on int8 operands with
int32 results and no float conv/matmul. Numerics: the compiled library must agree with
onnxruntime running the QDQ graph (the int8 reference) within one output quantization step,
and on single layers almost always exactly: the accumulator is exact, so only the reference's
float32 summation noise can move a value across a rounding boundary.

Calibration samples are drawn from an asymmetric range, so activation zero points are not 0
and the zero-point arithmetic (explicit padding with z_x, the folded z_x * sum(W) term, the
row/column sums of an activation x activation matmul) is exercised.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax, te

from edgec.ir import OPSET, from_proto, to_proto
from edgec.lower.tvm import lower_tvm, qdq
from edgec.lower.tvm.importer import import_onnx
from edgec.lower.tvm.qdq import integer_summary, legalize_qdq
from edgec.lower.tvm.qdq_kernels import fold_bias, quantized_bound, requantize
from edgec.lower.tvm.signature import read_signature
from edgec.quantization import quantize_model
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.runtimes.qemu import QemuRuntime, qemu_status
from edgec.runtimes.tvmrt import TVMRuntime
from edgec.targets import get_target

TARGET = get_target("x86_64-int8")
MIN_LSB_AGREEMENT = 0.99  # the target's tolerance (devices.yaml)
MIN_EXACT = 0.999  # single layers: the same integer as the reference on all but noise-level ties
CALIBRATION = 16
SAMPLES = 4
N = helper.make_node


def weights(*shape, seed=0) -> np.ndarray:
    w = np.random.default_rng(seed).standard_normal(shape)
    return (w / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def float_model(nodes, inputs: dict[str, tuple], consts: dict[str, np.ndarray], outputs=("y",)):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(v, n) for n, v in consts.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return from_proto(onnx.shape_inference.infer_shapes(proto))


def asymmetric_samples(model, count: int, seed: int) -> list[list[np.ndarray]]:
    """Inputs in [-1, 3): the range is asymmetric, so its zero point is not 0."""
    rng = np.random.default_rng(seed)
    return [[rng.uniform(-1, 3, v.shape.numpy()).astype(np.float32) for v in model.graph.inputs]
            for _ in range(count)]


def quantize(model, weight_bits: int = 8):
    return quantize_model(model, asymmetric_samples(model, CALIBRATION, seed=0), weight_bits=weight_bits,
                          bias_correction=False)


def compare_with_reference(qdq, info, path, target=TARGET) -> tuple[dict, float, float]:
    """Lower, run on fresh inputs; (report, fraction within 1 LSB, fraction exactly equal)."""
    report = lower_tvm(qdq, target, path)
    runtime = TVMRuntime(path)
    reference = OnnxRuntime.from_ir(qdq, optimize=False)
    step = info["activations"][qdq.graph.outputs[0].name]["scale"]
    diffs = []
    for inputs in asymmetric_samples(qdq, SAMPLES, seed=1):
        got, want = runtime.run(inputs)[0], reference.run(inputs)[0]
        assert got.shape == want.shape and got.dtype == want.dtype
        diffs.append(np.abs(got.astype(np.float64) - want).ravel() / step)
    diffs = np.concatenate(diffs)
    # 0.1% slack: the same integer dequantized by two runtimes may differ in float32's last bit.
    return report, float(np.mean(diffs <= 1.001)), float(np.mean(diffs <= 0.001))


def rewritten(qdq) -> tvm.IRModule:
    with tvm.target.Target(dict(TARGET.tvm_target)):  # as lower_tvm runs it: the rewrite reads the target
        return legalize_qdq()(import_onnx(to_proto(qdq), TARGET.name))


def calls(mod: tvm.IRModule, op_name: str) -> list[relax.Call]:
    found = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == op_name:
            found.append(expr)

    relax.analysis.post_order_visit(mod["main"], visit)
    return found


def dtype(expr) -> str:
    return str(expr.ty.dtype)


def assert_integer_products(mod: tvm.IRModule, convs: int, matmuls: int) -> None:
    """Exactly these many conv2d / matmul, every one int8 x int8 -> int32 (no float fallback),
    or, for a conv short enough to be exact in float32 (qdq._EXACT_FLOAT_TERMS), int8 data x
    int8 values held in float32 -> float32."""
    conv_calls, matmul_calls = calls(mod, "relax.nn.conv2d"), calls(mod, "relax.matmul")
    assert (len(conv_calls), len(matmul_calls)) == (convs, matmuls)
    for call in conv_calls + matmul_calls:
        if dtype(call) == "float32":
            weights = call.args[1].value.numpy()
            assert call.op.name == "relax.nn.conv2d" and dtype(call.args[0]) == "int8"
            assert np.array_equal(weights, np.round(weights)) and np.abs(weights).max() <= 128
            assert weights[..., 0].size <= qdq._EXACT_FLOAT_TERMS  # HWIO: terms per output
            continue
        assert [dtype(a) for a in call.args[:2]] == ["int8", "int8"], call.op.name
        assert dtype(call) == "int32" and str(call.attrs.out_dtype) == "int32", call.op.name


X = {"x": (1, 8, 10, 10)}
RELU6 = {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}

# name -> (nodes, inputs, constants, integer convs, integer matmuls)
CASES = {
    "conv_bias_relu6_padded": (
        [N("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), N("Clip", ["c", "lo", "hi"], ["y"])],
        X, {"w": weights(16, 8, 3, 3), "b": weights(16, 1, seed=1).ravel(), **RELU6}, 1, 0),
    "conv_strided_no_bias_relu": (
        [N("Conv", ["x", "w"], ["c"], pads=[1, 0, 2, 1], strides=[2, 2]), N("Relu", ["c"], ["y"])],
        X, {"w": weights(12, 8, 3, 3)}, 1, 0),
    "conv_depthwise": (
        [N("Conv", ["x", "w", "b"], ["y"], group=8, pads=[1, 1, 1, 1])],
        X, {"w": weights(8, 1, 3, 3), "b": weights(8, 1, seed=2).ravel()}, 1, 0),
    "conv_depthwise_strided_relu6": (  # channels-last on CPUs; stride 2 inlines the padding
        [N("Conv", ["x", "w", "b"], ["c"], group=8, pads=[1, 1, 1, 1], strides=[2, 2]),
         N("Clip", ["c", "lo", "hi"], ["y"])],
        X, {"w": weights(8, 1, 3, 3), "b": weights(8, 1, seed=6).ravel(), **RELU6}, 1, 0),
    "conv_grouped_dilated": (
        [N("Conv", ["x", "w", "b"], ["y"], group=2, dilations=[2, 2], pads=[2, 2, 2, 2])],
        X, {"w": weights(6, 4, 3, 3), "b": weights(6, 1, seed=3).ravel()}, 1, 0),
    "gemm_transposed_weight_relu": (
        [N("Gemm", ["x", "w", "b"], ["g"], transB=1), N("Relu", ["g"], ["y"])],
        {"x": (2, 64)}, {"w": weights(32, 64), "b": weights(32, 1, seed=4).ravel()}, 0, 1),
    "gemm": (
        [N("Gemm", ["x", "w", "b"], ["y"])],
        {"x": (2, 64)}, {"w": weights(32, 64).T.copy(), "b": weights(32, 1, seed=5).ravel()}, 0, 1),
    "matmul_3d": (
        [N("MatMul", ["x", "w"], ["y"])], {"x": (2, 5, 48)}, {"w": weights(48, 24)}, 0, 1),
    "matmul_two_activations": (  # attention's Q.K^T: both operands have zero points
        [N("MatMul", ["x", "k"], ["y"])], {"x": (1, 2, 6, 16), "k": (1, 2, 16, 7)}, {}, 0, 1),
    "conv_then_global_average_pool": (
        [N("Conv", ["x", "w"], ["c"]), N("GlobalAveragePool", ["c"], ["y"])],
        X, {"w": weights(8, 8, 1, 1)}, 1, 0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_is_integer_and_matches_the_qdq_reference(case, tmp_path):
    nodes, inputs, consts, convs, matmuls = CASES[case]
    qdq, info = quantize(float_model(nodes, inputs, consts))
    assert_integer_products(rewritten(qdq), convs, matmuls)

    report, within_one, exact = compare_with_reference(qdq, info, tmp_path / "m.so")
    assert report["int8"]["integer_convs"] == convs and report["int8"]["integer_matmuls"] == matmuls
    assert within_one == 1.0 and exact >= MIN_EXACT, (within_one, exact)


def test_padding_inserts_the_activation_zero_point(tmp_path):
    nodes, inputs, consts, _, _ = CASES["conv_bias_relu6_padded"]
    qdq, info = quantize(float_model(nodes, inputs, consts))
    zero_point = info["activations"]["x"]["zero_point"]
    assert zero_point != 0  # else zero padding would be exact and this test would prove nothing
    (pad,) = calls(rewritten(qdq), "relax.nn.pad")
    (conv,) = calls(rewritten(qdq), "relax.nn.conv2d")
    assert float(pad.attrs.pad_value) == zero_point and dtype(pad) == "int8"
    assert [int(p) for p in conv.attrs.padding] == [0, 0, 0, 0]


def test_int8_convs_run_channels_last_on_cpus(tmp_path):
    for case in ("conv_depthwise", "conv_bias_relu6_padded", "conv_grouped_dilated"):
        nodes, inputs, consts, _, _ = CASES[case]
        qdq, _ = quantize(float_model(nodes, inputs, consts))
        (conv,) = calls(rewritten(qdq), "relax.nn.conv2d")
        assert (conv.attrs.data_layout, conv.attrs.kernel_layout) == ("NHWC", "HWIO")
        (pad,) = calls(rewritten(qdq), "relax.nn.pad")
        assert [int(p) for p in pad.attrs.pad_width][-2:] == [0, 0]  # channels are not padded: NHWC


@pytest.mark.parametrize("channels,summed_in", [(qdq._EXACT_FLOAT_TERMS, "float32"),
                                                (qdq._EXACT_FLOAT_TERMS + 1, "int32")])
def test_convs_sum_in_float32_only_where_it_is_exact(channels, summed_in, tmp_path):
    """1023 int8 products of at most 2^14 each stay below 2^24: float32 holds every partial
    sum exactly; one more term could round, so that conv sums in int32."""
    model = float_model([N("Conv", ["x", "w"], ["y"])], {"x": (1, channels, 2, 2)}, {"w": weights(4, channels, 1, 1)})
    qdq_model, info = quantize(model)
    (conv,) = calls(rewritten(qdq_model), "relax.nn.conv2d")
    assert dtype(conv) == summed_in
    _, within_one, exact = compare_with_reference(qdq_model, info, tmp_path / "m.so")
    assert within_one == 1.0 and exact >= MIN_EXACT, (within_one, exact)


def test_fused_relu6_is_the_requantization_clamp(tmp_path):
    nodes, inputs, consts, _, _ = CASES["conv_bias_relu6_padded"]
    qdq, _ = quantize(float_model(nodes, inputs, consts))
    mod = rewritten(qdq)
    # No float op survives between the int8 input and the int8 output.
    assert integer_summary(mod)["float_ops"] == {}
    assert not calls(mod, "relax.maximum") and not calls(mod, "relax.minimum")


def test_data_movement_runs_on_int8_and_arithmetic_stays_float(tmp_path):
    # Conv -> MaxPool -> Reshape -> Transpose share parameters: int8 all the way. The Add of
    # two activations has no integer kernel here: a float island between dequantize and quantize.
    nodes = [N("Conv", ["x", "w"], ["c"]), N("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             N("Reshape", ["p", "shape"], ["r"]), N("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
             N("Add", ["t", "t"], ["y"])]
    model = float_model(nodes, X, {"w": weights(8, 8, 1, 1), "shape": np.array([1, 8, 25], np.int64)})
    qdq, info = quantize(model)
    summary = integer_summary(rewritten(qdq))
    assert summary["integer_convs"] == 1
    assert summary["float_ops"] == {"relax.add": 1}

    _, within_one, exact = compare_with_reference(qdq, info, tmp_path / "m.so")
    assert within_one == 1.0 and exact >= MIN_EXACT


def test_rounding_is_half_to_even_like_onnx():
    # ONNX QuantizeLinear (and so onnxruntime's reference) rounds ties to even. Ties are real:
    # e.g. an odd accumulator times a multiplier of 0.5.
    acc = np.array([-5, -3, -1, 1, 3, 5, 253, -257], np.int32)
    expected = [-2, -2, 0, 0, 2, 2, 126, -128]
    acc_t = te.placeholder(acc.shape, "int32")
    bias_t, multiplier_t = te.placeholder((1,), "int32"), te.placeholder((1,), "float32")
    out_t = requantize(acc_t, bias_t, multiplier_t, axis=0, zero_point=0, qmin=-128, qmax=127)
    kernel = tvm.compile(te.create_prim_func([acc_t, bias_t, multiplier_t, out_t]), target="llvm")
    args = [tvm.runtime.tensor(a) for a in (acc, np.zeros(1, np.int32), np.full(1, 0.5, np.float32))]
    out = tvm.runtime.tensor(np.zeros(acc.shape, np.int8))
    kernel(*args, out)
    np.testing.assert_array_equal(out.numpy(), expected)

    # The float islands keep TVM's relax.quantize: it must round ties the same way.
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(acc.shape, "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q = bb.emit_output(relax.op.quantize(
                x, relax.const(2.0, "float32"), relax.const(0, "int8"), axis=0, out_dtype="int8"))
        bb.emit_func_output(q)
    vm = relax.VirtualMachine(tvm.compile(legalize_qdq()(bb.get()), target="llvm"), tvm.cpu())
    np.testing.assert_array_equal(vm["main"](tvm.runtime.tensor(acc.astype(np.float32))).numpy(), expected)


def test_folded_bias_and_clamp_bounds():
    w_sums = np.array([10, -3], np.int64)
    # sum (x - zx) w = sum x w - zx * sum w, plus the bias, per output channel.
    np.testing.assert_array_equal(fold_bias(w_sums, -5, np.array([7, 1], np.int32), None), [57, -14])
    # A bias at another scale is rescaled (rounding half to even) to the accumulator's.
    np.testing.assert_array_equal(fold_bias(w_sums, 0, np.array([5, 3], np.int32), np.array([0.5, 0.5])), [2, 2])
    with pytest.raises(OverflowError):
        fold_bias(np.array([2**31 // 100]), 127, None, None)
    # ReLU6 on an output with scale 0.05, zero point -128: [0, 6] -> [-128, -8].
    assert quantized_bound(0.0, 0.05, -128, -128, 127) == -128
    assert quantized_bound(6.0, 0.05, -128, -128, 127) == -8
    assert quantized_bound(np.inf, 0.05, -128, -128, 127) == 127


def test_int4_weights_run_in_the_int8_kernels(tmp_path):
    nodes, inputs, consts, _, _ = CASES["conv_depthwise"]
    qdq, info = quantize(float_model(nodes, inputs, consts), weight_bits=4)
    int4 = dataclasses.replace(TARGET, name="x86_64-int4", precision="int4")
    report, within_one, exact = compare_with_reference(qdq, info, tmp_path / "m.so", target=int4)
    assert report["int8"]["integer_convs"] == 1
    assert within_one == 1.0 and exact >= MIN_EXACT


def test_float_targets_keep_the_float_graph(tmp_path):
    nodes, inputs, consts, _, _ = CASES["gemm"]
    qdq, _ = quantize(float_model(nodes, inputs, consts))
    report = lower_tvm(qdq, get_target("x86_64-fp32"), tmp_path / "m.so")
    assert "int8" not in report and report["relax_ops"]["relax.dequantize"] >= 2


def test_zoo_transformer_block_is_integer_and_within_one_lsb(tmp_path):
    from edgec import zoo
    from edgec.frontends import load_model
    from edgec.passes import run_passes

    z = zoo.build("transformer_block", seq_len=16, dim=32)
    model, _ = run_passes(load_model(z.module, example_inputs=z.example_inputs).model, TARGET.passes)
    qdq, info = quantize(model)
    report, within_one, _ = compare_with_reference(qdq, info, tmp_path / "t.so")
    # Q, K, V, the output projection and the two MLP layers, plus Q.K^T and P.V.
    assert report["int8"]["integer_matmuls"] == 8
    assert within_one >= MIN_LSB_AGREEMENT


@pytest.mark.arm64
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None,
                    reason="aarch64 cross compiler missing: apt-get install g++-aarch64-linux-gnu")
def test_arm64_int8_library_is_aarch64_and_matches_under_qemu(tmp_path):
    nodes, inputs, consts, _, _ = CASES["conv_bias_relu6_padded"]
    qdq, info = quantize(float_model(nodes, inputs, consts))
    out = tmp_path / "m.arm64.so"
    report = lower_tvm(qdq, get_target("arm64-int8"), out)
    assert report["int8"]["integer_convs"] == 1 and read_signature(out).arch == "arm64"
    if shutil.which("file"):
        assert "ARM aarch64" in subprocess.run(["file", str(out)], capture_output=True, text=True).stdout

    reachable, why = qemu_status()
    if not reachable:
        pytest.skip(f"cannot run the aarch64 library here: {why}")
    (x,) = asymmetric_samples(qdq, 1, seed=1)[0]
    got = QemuRuntime(out).run([x])[0]
    want = OnnxRuntime.from_ir(qdq, optimize=False).run([x])[0]
    assert np.mean(np.abs(got - want) <= 1.001 * info["activations"]["y"]["scale"]) == 1.0
