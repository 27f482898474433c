"""Where compile verifies each artifact: host, qemu-arm64 for arm64 .so files, gpu0 for CUDA."""

import dataclasses

import numpy as np
import onnx_ir
import pytest
from onnx import TensorProto, helper

from edgec.bench.devices import cuda_status
from edgec.lower.tvm import lower_tvm
from edgec.runtimes import cpu_features
from edgec.runtimes.placement import run_all, verification_runtime
from edgec.runtimes.qemu import qemu_status
from edgec.targets import get_target


def _tiny_model() -> onnx_ir.Model:
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 8], np.linspace(-1, 1, 32).astype(np.float32).ravel())
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
                              "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], [w])
    return onnx_ir.from_proto(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def _reference(x):
    return np.maximum(x @ np.linspace(-1, 1, 32).astype(np.float32).reshape(4, 8), 0)


@pytest.mark.skipif(not qemu_status()[0], reason=f"qemu-arm64 unavailable: {qemu_status()[1]}")
def test_an_arm64_library_is_verified_under_qemu(tmp_path):
    target = get_target("arm64-fp32")
    assert "qemu-arm64" in target.runs_on
    lower_tvm(_tiny_model(), target, tmp_path / "m.so")
    runtime, where = verification_runtime("tvm", tmp_path / "m.so", target)
    assert where.startswith("qemu-arm64")
    xs = [[np.full((2, 4), v, np.float32)] for v in (-1.0, 0.5, 2.0)]
    outputs = run_all(runtime, xs)  # one emulator start for all three
    for x, y in zip(xs, outputs):
        np.testing.assert_allclose(y[0], _reference(x[0]), rtol=1e-5, atol=1e-6)


def test_an_arm64_library_without_an_emulator_listed_is_not_run(tmp_path):
    target = dataclasses.replace(get_target("arm64-fp32"), runs_on=("host",))
    runtime, why = verification_runtime("tvm", tmp_path / "m.so", target)
    assert runtime is None and why.startswith("not run: built for arm64")


def test_a_cuda_library_without_a_gpu_is_not_run(tmp_path):
    if cuda_status(0)[0]:
        pytest.skip("a GPU is here: scripts/cuda_check.py verifies there")
    runtime, why = verification_runtime("tvm", tmp_path / "m.so", get_target("cuda-fp32"))
    assert runtime is None and why.startswith("not run: no GPU")


def test_an_avx512_library_is_not_run_on_a_cpu_without_avx512(tmp_path, monkeypatch):
    target = get_target("x86_64-fp32-avx512")
    assert "avx512f" in cpu_features.required_flags(target.tvm_target)
    lower_tvm(_tiny_model(), target, tmp_path / "m.so")
    # An AVX2-only CPU (e.g. Zen 3): the .so would die of SIGILL there, so it is not run.
    monkeypatch.setattr(cpu_features, "host_flags", lambda: frozenset({"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2"}))
    runtime, why = verification_runtime("tvm", tmp_path / "m.so", target)
    assert runtime is None and "avx512f" in why and "x86_64-fp32-avx512" in why
    assert verification_runtime("tvm", tmp_path / "m.so", get_target("x86_64-fp32"))[1] == "host"


def test_vnni_needs_the_cpuinfo_flag_not_the_llvm_spelling():
    missing_flags = cpu_features.missing_flags
    vnni = get_target("x86_64-int8-vnni").tvm_target
    assert missing_flags(vnni, frozenset({"avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw"})) == ["avx512_vnni"]
    assert missing_flags(vnni, frozenset({"avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512_vnni"})) == []
    assert missing_flags(get_target("arm64-fp32").tvm_target, frozenset()) == []


@pytest.mark.skipif(bool(cpu_features.missing_flags(get_target("x86_64-fp32-avx512").tvm_target)),
                    reason="this CPU has no AVX-512")
def test_the_avx512_library_matches_the_reference_where_the_cpu_has_avx512(tmp_path):
    target = get_target("x86_64-fp32-avx512")
    lower_tvm(_tiny_model(), target, tmp_path / "m.so")
    runtime, where = verification_runtime("tvm", tmp_path / "m.so", target)
    assert where == "host"
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(runtime.run([x])[0], _reference(x), rtol=1e-5, atol=1e-6)


def test_the_portable_target_names_its_faster_sibling_only_where_the_cpu_runs_it(monkeypatch):
    from edgec.targets import load_registry

    targets = list(load_registry().targets.values())
    avx512 = frozenset({"avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512dq", "avx512vl",
                        "avx512cd", "avx512_vnni"})
    monkeypatch.setattr(cpu_features, "host_flags", lambda: avx512)
    assert cpu_features.faster_sibling(get_target("x86_64-fp32"), targets) == "x86_64-fp32-avx512"
    assert cpu_features.faster_sibling(get_target("x86_64-int8"), targets) == "x86_64-int8-vnni"
    assert cpu_features.faster_sibling(get_target("x86_64-fp32-avx512"), targets) is None
    monkeypatch.setattr(cpu_features, "host_flags", lambda: frozenset({"avx", "avx2", "fma", "f16c", "bmi2"}))
    assert cpu_features.faster_sibling(get_target("x86_64-fp32"), targets) is None
