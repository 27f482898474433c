"""TVMRuntime: loading (and refusing) artifacts, running with tuple outputs, timing."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper

from edgec.errors import EdgecError, InputShapeError, ModelLoadError
from edgec.ir import OPSET, from_proto
from edgec.lower.tvm import lower_tvm
from edgec.lower.tvm.signature import signature_path
from edgec.runtimes.base import Timing
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.runtimes.tvmrt import TVMRuntime, elf_architecture
from edgec.targets import get_target, host_arch


@pytest.fixture(scope="module")
def two_output_model():
    """y = x @ w split into two outputs of different widths."""
    w = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]),
         helper.make_node("Split", ["m", "sizes"], ["a", "b"], axis=1)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 2]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([2, 3], np.int64), "sizes")],
    )
    return from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]))


@pytest.fixture(scope="module")
def library(two_output_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("tvm") / "m.so"
    lower_tvm(two_output_model, get_target("x86_64-fp32"), path)
    return path


def test_runs_tuple_outputs_like_onnxruntime(library, two_output_model):
    runtime = TVMRuntime(library)
    assert [(s.name, s.shape) for s in runtime.inputs] == [("x", (2, 6))]
    assert [(s.name, s.shape) for s in runtime.outputs] == [("a", (2, 2)), ("b", (2, 3))]
    x = np.random.default_rng(2).standard_normal((2, 6)).astype(np.float32)
    got = runtime.run([x])
    want = OnnxRuntime.from_ir(two_output_model).run([x])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_inputs_set_once_serve_repeated_invokes(library):
    runtime = TVMRuntime(library)
    x1, x2 = np.ones((2, 6), np.float32), np.full((2, 6), -2.0, np.float32)
    first = runtime.run([x1])
    runtime.set_inputs([x2])
    runtime.invoke()
    runtime.invoke()
    second = runtime.get_outputs()
    np.testing.assert_allclose(second[0], -2.0 * first[0], rtol=1e-5)


def test_time_returns_the_requested_samples(library):
    runtime = TVMRuntime(library, num_threads=1)
    timing = runtime.time([np.zeros((2, 6), np.float32)], warmup=2, repeat=7)
    assert isinstance(timing, Timing)
    assert len(timing.samples_ms) == 7 and timing.warmup == 2 and timing.runtime == "tvm"
    assert all(s > 0 for s in timing.samples_ms)
    assert runtime.threads == 1


def test_wrong_input_shape_is_refused(library):
    with pytest.raises(InputShapeError, match="input 'x' has shape \\[2, 6\\], got \\[3, 6\\]"):
        TVMRuntime(library).run([np.zeros((3, 6), np.float32)])


def test_devices_are_cpu_or_an_existing_gpu(library):
    with pytest.raises(EdgecError, match="device 'vulkan' is not supported"):
        TVMRuntime(library, device="vulkan")
    if not tvm.cuda(0).exist:
        with pytest.raises(EdgecError, match="TVM sees no CUDA GPU 0"):
            TVMRuntime(library, device="cuda")


def test_missing_file():
    with pytest.raises(ModelLoadError, match="artifact not found"):
        TVMRuntime("/nonexistent/model.so")


def test_missing_signature_names_the_sidecar(library, tmp_path):
    lonely = tmp_path / "m.so"
    shutil.copy(library, lonely)
    with pytest.raises(ModelLoadError, match="m.so.json: signature file not found"):
        TVMRuntime(lonely)


def test_corrupt_signature_is_refused(library, tmp_path):
    copy = tmp_path / "m.so"
    shutil.copy(library, copy)
    signature_path(copy).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ModelLoadError, match="not an edgec TVM signature"):
        TVMRuntime(copy)


def test_not_an_elf_file(tmp_path):
    bogus = tmp_path / "m.so"
    bogus.write_bytes(b"PK\x03\x04 a zip, not a library")
    with pytest.raises(ModelLoadError, match="not an ELF shared library"):
        TVMRuntime(bogus)


def _fake_elf(path, e_machine: int):
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1  # 64-bit, little-endian
    header[18:20] = e_machine.to_bytes(2, "little")
    path.write_bytes(bytes(header))


@pytest.mark.skipif(host_arch() != "x86_64", reason="checks refusal of an arm64 library on an x86_64 host")
def test_foreign_architecture_is_refused_before_loading(tmp_path):
    foreign = tmp_path / "m.so"
    _fake_elf(foreign, 183)  # EM_AARCH64; dlopen would fail (or worse) on it
    assert elf_architecture(foreign) == "arm64"
    with pytest.raises(ModelLoadError, match="built for arm64; .*e.g. --device qemu-arm64"):
        TVMRuntime(foreign)


def test_host_library_architecture(library):
    assert elf_architecture(library) == host_arch()


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs the host C++ compiler")
def test_shared_library_that_is_not_a_tvm_module(tmp_path, library):
    plain = tmp_path / "plain.so"
    subprocess.run(["g++", "-shared", "-fPIC", "-x", "c", "-", "-o", str(plain)],
                   input="int answer(void) { return 42; }", text=True, check=True)
    shutil.copy(signature_path(library), signature_path(plain))
    with pytest.raises(ModelLoadError, match="not a loadable TVM Relax library"):
        TVMRuntime(plain)
