"""lower_tvm: hand-built ONNX graphs and a torch export, compiled to a .so, run in TVMRuntime
and compared with onnxruntime (or torch); arm64 cross builds; errors; atomic writes."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm.relax.frontend.onnx import onnx_frontend

from edgec.errors import EdgecError, InputShapeError, ModelLoadError, UnsupportedOpsError
from edgec.ir import OPSET, from_proto
from edgec.lower.tvm import RELAX_STAGES, lower_tvm
from edgec.lower.tvm.signature import read_signature, signature_path
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.runtimes.tvmrt import TVMRuntime
from edgec.targets import get_target

MAX_REL_ERROR = 1e-5
rng = np.random.default_rng(0)


def weights(*shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def onnx_model(nodes, inputs: dict[str, tuple], consts: dict[str, np.ndarray] | None = None,
               outputs: tuple[str, ...] = ("y",), extra_opsets=()):
    """A shape-inferred opset-21 model as the IR, like the canonical passes hand it over."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None) for n in outputs],
        [numpy_helper.from_array(v, n) for n, v in (consts or {}).items()],
    )
    opsets = [helper.make_opsetid("", OPSET), *(helper.make_opsetid(d, 1) for d in extra_opsets)]
    proto = helper.make_model(graph, opset_imports=opsets)
    return from_proto(onnx.shape_inference.infer_shapes(proto))


def rel_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """max |actual - reference| / max |reference|, as devices.yaml defines it."""
    return float(np.abs(actual - reference).max() / max(np.abs(reference).max(), 1e-12))


def lower_and_run(model, tmp_path, name="m"):
    path = tmp_path / f"{name}.so"
    report = lower_tvm(model, get_target("x86_64-fp32"), path)
    runtime = TVMRuntime(path)
    inputs = [rng.standard_normal(s.shape).astype(s.dtype) for s in runtime.inputs]
    return report, runtime.run(inputs), inputs


def assert_matches_onnxruntime(model, tmp_path):
    report, outputs, inputs = lower_and_run(model, tmp_path)
    expected = OnnxRuntime.from_ir(model, optimize=False).run(inputs)
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        assert got.shape == want.shape and got.dtype == want.dtype
        assert rel_error(got, want) <= MAX_REL_ERROR
    return report


X = {"x": (1, 4, 9, 9)}
N = helper.make_node

# name -> (nodes, inputs, constants, outputs)
CASES = {
    "conv": ([N("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])],
             X, {"w": weights(8, 4, 3, 3), "b": weights(8)}, ("y",)),
    "conv_depthwise": ([N("Conv", ["x", "w"], ["y"], group=4, pads=[1, 1, 1, 1])],
                       X, {"w": weights(4, 1, 3, 3)}, ("y",)),
    "conv_grouped": ([N("Conv", ["x", "w", "b"], ["y"], group=2, dilations=[2, 2])],
                     X, {"w": weights(6, 2, 3, 3), "b": weights(6)}, ("y",)),
    # Group width 8, 32 channels: the channels-last schedule vectorizes within one group's 8
    # output channels (kernel_facts.grouped_output_channels); strided, padded, with the odd
    # 7-wide output plane.
    "conv_grouped_width_8": ([N("Conv", ["x", "w", "b"], ["y"], group=4, pads=[1, 1, 1, 1], strides=[2, 2])],
                             {"x": (1, 32, 13, 13)}, {"w": weights(32, 8, 3, 3), "b": weights(32)}, ("y",)),
    "gemm": ([N("Gemm", ["x", "w", "b"], ["y"], transB=1, alpha=0.5, beta=2.0)],
             {"x": (3, 16)}, {"w": weights(10, 16), "b": weights(10)}, ("y",)),
    "matmul": ([N("MatMul", ["x", "w"], ["y"])], {"x": (2, 5, 16)}, {"w": weights(16, 7)}, ("y",)),
    "add_broadcast": ([N("Add", ["x", "c"], ["y"])], X, {"c": weights(4, 1, 1)}, ("y",)),
    "mul_broadcast": ([N("Mul", ["x", "s"], ["y"])], {**X, "s": (1, 4, 1, 9)}, {}, ("y",)),
    "relu": ([N("Relu", ["x"], ["y"])], X, {}, ("y",)),
    "clip": ([N("Clip", ["x", "lo", "hi"], ["y"])], X,
             {"lo": np.array(-0.5, np.float32), "hi": np.array(0.75, np.float32)}, ("y",)),
    "clip_max_only": ([N("Clip", ["x", "", "hi"], ["y"])], X, {"hi": np.array(0.5, np.float32)}, ("y",)),
    "clip_nan_bound": ([N("Clip", ["x", "lo", "hi"], ["y"])], X,  # NaN bound: unbounded below
                       {"lo": np.array(np.nan, np.float32), "hi": np.array(0.5, np.float32)}, ("y",)),
    "clip_bounds_computed": ([N("Neg", ["hi"], ["lo"]), N("Clip", ["x", "lo", "hi"], ["y"])],
                             {**X, "hi": ()}, {}, ("y",)),
    "sigmoid": ([N("Sigmoid", ["x"], ["y"])], X, {}, ("y",)),
    "exp": ([N("Exp", ["x"], ["y"])], X, {}, ("y",)),
    "tanh": ([N("Tanh", ["x"], ["y"])], X, {}, ("y",)),
    "erf": ([N("Erf", ["x"], ["y"])], X, {}, ("y",)),
    "hardswish": ([N("HardSwish", ["x"], ["y"])], X, {}, ("y",)),
    "gelu": ([N("Gelu", ["x"], ["y"])], X, {}, ("y",)),
    "gelu_tanh": ([N("Gelu", ["x"], ["y"], approximate="tanh")], X, {}, ("y",)),
    "maxpool": ([N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
                X, {}, ("y",)),
    "averagepool": ([N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                       pads=[1, 1, 1, 1], count_include_pad=0)], X, {}, ("y",)),
    "globalaveragepool": ([N("GlobalAveragePool", ["x"], ["y"])], X, {}, ("y",)),
    "reshape": ([N("Reshape", ["x", "shape"], ["y"])], X, {"shape": np.array([1, -1, 27], np.int64)}, ("y",)),
    "flatten": ([N("Flatten", ["x"], ["y"], axis=2)], X, {}, ("y",)),
    "transpose": ([N("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], X, {}, ("y",)),
    "concat": ([N("Relu", ["x"], ["r"]), N("Concat", ["x", "r", "c"], ["y"], axis=1)],
               X, {"c": weights(1, 2, 9, 9)}, ("y",)),
    "split": ([N("Split", ["x", "sizes"], ["a", "b"], axis=1)], X,
              {"sizes": np.array([1, 3], np.int64)}, ("a", "b")),
    "slice": ([N("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])], X,
              {"starts": np.array([1, 8], np.int64), "ends": np.array([8, 0], np.int64),
               "axes": np.array([2, 3], np.int64), "steps": np.array([2, -3], np.int64)}, ("y",)),
    "pad": ([N("Pad", ["x", "pads", "v"], ["y"])], X,
            {"pads": np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "v": np.array(0.25, np.float32)}, ("y",)),
    "pad_reflect": ([N("Pad", ["x", "pads"], ["y"], mode="reflect")], X,
                    {"pads": np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64)}, ("y",)),
    "softmax": ([N("Softmax", ["x"], ["y"], axis=1)], X, {}, ("y",)),
    "layernorm": ([N("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)],
                  {"x": (2, 5, 16)}, {"g": weights(16), "b": weights(16)}, ("y",)),
    "resize_linear": ([N("Resize", ["x", "", "scales"], ["y"], mode="linear",
                         coordinate_transformation_mode="half_pixel")], X,
                      {"scales": np.array([1, 1, 2, 2], np.float32)}, ("y",)),
    "resize_nearest": ([N("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                          coordinate_transformation_mode="asymmetric", nearest_mode="floor")], X,
                       {"sizes": np.array([1, 4, 18, 27], np.int64)}, ("y",)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case, tmp_path):
    nodes, inputs, consts, outputs = CASES[case]
    assert_matches_onnxruntime(onnx_model(nodes, inputs, consts, outputs), tmp_path)


def test_report_and_signature_describe_the_artifact(tmp_path):
    nodes = [N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["r"]),
             N("Split", ["r"], ["a", "b"], axis=1, num_outputs=2)]
    model = onnx_model(nodes, X, {"w": weights(6, 4, 3, 3)}, ("a", "b"))
    report = assert_matches_onnxruntime(model, tmp_path)
    path = tmp_path / "m.so"

    assert report["path"] == str(path) and report["size_bytes"] == path.stat().st_size
    # Float convs run channels-last (pipeline.CHANNELS_LAST): the input and the weights are
    # transposed to NHWC/HWIO, each of the two outputs back to NCHW.
    assert report["relax_ops"] == {"relax.nn.conv2d": 1, "relax.nn.relu": 1, "relax.split": 1,
                                   "relax.permute_dims": 4}
    assert report["relax_functions"] == 1 and report["prim_funcs"] >= 1
    assert set(report["stage_seconds"]) == set(RELAX_STAGES)
    assert report["tvm_target"]["kind"] == "llvm" and report["compile_seconds"] > 0

    sig = read_signature(path)
    assert report["signature"] == str(signature_path(path))
    assert [(s.name, s.shape) for s in sig.inputs] == [("x", (1, 4, 9, 9))]
    assert [(s.name, s.shape, s.dtype.name) for s in sig.outputs] == [
        ("a", (1, 3, 9, 9), "float32"), ("b", (1, 3, 9, 9), "float32")]
    assert (sig.target, sig.arch) == ("x86_64-fp32", "x86_64")


def test_constant_clip_bounds_need_no_nan_guards(tmp_path):
    # ReLU6 is a Clip with constant bounds; its NaN guards would each cost an LLVM build.
    model = onnx_model([N("Clip", ["x", "lo", "hi"], ["y"])], X,
                       {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)})
    report = assert_matches_onnxruntime(model, tmp_path)
    assert report["relax_ops"] == {"relax.maximum": 1, "relax.minimum": 1}


def test_weights_are_embedded_not_inputs(tmp_path):
    model = onnx_model([N("MatMul", ["x", "w"], ["y"])], {"x": (2, 16)}, {"w": weights(16, 4)})
    _, _, inputs = lower_and_run(model, tmp_path)
    assert len(inputs) == 1  # the runtime only asks for x: w lives in the .so


def test_torch_export_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")

    class SmallNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x):
            x = torch.nn.functional.hardswish(self.bn(self.conv(x)))
            x = torch.relu(self.dw(x)) + x
            return torch.softmax(self.fc(x.mean(dim=(2, 3))), dim=-1)

    torch.manual_seed(0)
    net = SmallNet().eval()
    x = torch.randn(1, 3, 16, 16)
    model = torch.onnx.export(net, (x,), dynamo=True, opset_version=OPSET).model
    path = tmp_path / "net.so"
    report = lower_tvm(model, get_target("x86_64-fp32"), path)
    (got,) = TVMRuntime(path).run([x.numpy()])
    with torch.no_grad():
        want = net(x).numpy()
    assert rel_error(got, want) <= MAX_REL_ERROR
    assert report["relax_ops"].get("relax.nn.conv2d") == 2


def test_extra_passes_run_in_their_stage(tmp_path):
    seen = []

    @tvm.transform.module_pass(opt_level=0, name="RecordRelaxOps")
    def record(mod, _ctx):
        seen.append(sorted({f.__class__.__name__ for f in mod.functions.values()}))
        return mod

    model = onnx_model([N("Relu", ["x"], ["y"])], X)
    lower_tvm(model, get_target("x86_64-fp32"), tmp_path / "m.so", extra_passes={"rewrite": [record]})
    assert seen == [["Function"]]  # ran once, before legalization made any PrimFunc

    with pytest.raises(ValueError, match="unknown Relax stage"):
        lower_tvm(model, get_target("x86_64-fp32"), tmp_path / "n.so", extra_passes={"fuse": [record]})


def test_unsupported_ops_are_reported_together(tmp_path):
    missing_op = "DFT"
    assert missing_op not in onnx_frontend._get_convert_map()
    nodes = [N("Relu", ["x"], ["r"], domain="com.acme", name="acme_relu"),
             N("Relu", ["r"], ["s"]),
             N(missing_op, ["s"], ["y"], name="spectrum")]
    proto = helper.make_model(
        helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.acme", 1)])
    out = tmp_path / "m.so"
    with pytest.raises(UnsupportedOpsError) as err:
        lower_tvm(from_proto(proto), get_target("x86_64-fp32"), out)
    assert [(name, op) for name, op, _ in err.value.nodes] == [("acme_relu", "Relu"), ("spectrum", "DFT")]
    message = str(err.value)
    assert "custom domain 'com.acme'" in message and "no converter for DFT" in message
    assert "x86_64-fp32" in message
    assert not out.exists() and not signature_path(out).exists()


def test_converter_failure_names_the_node(tmp_path):
    # Valid ONNX (a 4-D convolution) that TVM's Conv converter refuses.
    model = onnx_model([N("Relu", ["x"], ["r"]), N("Conv", ["r", "w"], ["y"], name="conv4d")],
                       {"x": (1, 2, 2, 2, 2, 2)}, {"w": weights(2, 2, 1, 1, 1, 1)})
    with pytest.raises(UnsupportedOpsError) as err:
        lower_tvm(model, get_target("x86_64-fp32"), tmp_path / "m.so")
    assert [(name, op) for name, op, _ in err.value.nodes] == [("conv4d", "Conv")]
    assert "Ndim > 5" in str(err.value)


def test_dynamic_input_shape_is_refused(tmp_path):
    model = onnx_model([N("Relu", ["x"], ["y"])], {"x": ("N", 4, 9, 9)})
    with pytest.raises(InputShapeError, match=r"input 'x' has dynamic shape \['N', 4, 9, 9\].*--input-shape"):
        lower_tvm(model, get_target("x86_64-fp32"), tmp_path / "m.so")


def test_failed_link_leaves_no_file_and_keeps_the_old_one(tmp_path):
    # A "compiler" that writes half a library and fails, as a crashed linker would.
    broken_cc = tmp_path / "broken-g++"
    broken_cc.write_text('#!/bin/sh\nwhile [ "$1" != "-o" ]; do shift; done\necho half > "$2"\nexit 1\n')
    broken_cc.chmod(0o755)
    target = dataclasses.replace(get_target("arm64-fp32"), tvm_cross_compiler=str(broken_cc))
    out = tmp_path / "m.so"
    out.write_bytes(b"previous build")
    model = onnx_model([N("Relu", ["x"], ["y"])], X)

    with pytest.raises(EdgecError, match="linking the TVM library for target 'arm64-fp32'"):
        lower_tvm(model, target, out)
    assert out.read_bytes() == b"previous build"
    assert not signature_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-g++", "m.so"]


def test_missing_cross_compiler_names_the_debian_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no aarch64-linux-gnu-g++ anywhere
    out = tmp_path / "m.so"
    with pytest.raises(EdgecError, match="apt-get install gcc-aarch64-linux-gnu g\\+\\+-aarch64-linux-gnu"):
        lower_tvm(onnx_model([N("Relu", ["x"], ["y"])], X), get_target("arm64-fp32"), out)
    assert not out.exists()


@pytest.mark.arm64
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None,
                    reason="aarch64 cross compiler missing: apt-get install g++-aarch64-linux-gnu")
def test_arm64_library_is_aarch64_and_refused_on_x86(tmp_path):
    model = onnx_model([N("Conv", ["x", "w"], ["c"]), N("Relu", ["c"], ["y"])], X, {"w": weights(4, 4, 3, 3)})
    out = tmp_path / "m.arm64.so"
    report = lower_tvm(model, get_target("arm64-fp32"), out)
    assert report["cross_compiler"] == "aarch64-linux-gnu-g++"
    assert read_signature(out).arch == "arm64"
    if shutil.which("file"):
        assert "ARM aarch64" in subprocess.run(["file", str(out)], capture_output=True, text=True).stdout
    if get_target("arm64-fp32").is_host_arch:
        pytest.skip("this host is arm64: it can load the library")
    with pytest.raises(ModelLoadError, match="built for arm64; .*--device qemu-arm64"):
        TVMRuntime(out)
