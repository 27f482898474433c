"""qemu-arm64: an arm64 TVM library and a TFLite file run under qemu-user and match the host.

Needs the aarch64 userland from scripts/setup-qemu-arm64.sh; skipped (with that command as
the reason) where it is missing. One agent start runs both artifacts (~10 s).
"""

import numpy as np
import pytest

from edgec.bench import benchmark, probe
from edgec.errors import EdgecError
from edgec.runtimes.qemu import QemuRuntime, qemu_status
from edgec.runtimes.tvmrt import elf_architecture

ok, why = qemu_status()
pytestmark = pytest.mark.skipif(not ok, reason=f"qemu-arm64 unavailable: {why}")


@pytest.fixture(scope="module")
def arm64_artifacts(tmp_path_factory):
    d = tmp_path_factory.mktemp("qemu")
    so = probe.write_probe_tvm(d / "probe.arm64-fp32.so", 32, target="arm64-fp32")
    tflite = probe.write_probe_tflite(d / "probe.tflite", 32)
    assert elf_architecture(so) == "arm64"
    return so, tflite


def test_arm64_tvm_and_tflite_match_the_host(arm64_artifacts):
    so, tflite = arm64_artifacts
    x = probe.probe_input(32)
    reference = probe.probe_reference(x)
    tvm_rt, tflite_rt = QemuRuntime(so), QemuRuntime(tflite)
    # One emulator start for both: the agent runs them interleaved.
    t_tvm, t_tflite = tvm_rt.time_interleaved(tflite_rt, [x], [probe.probe_input(32, "NHWC")], warmup=1, repeat=3)

    np.testing.assert_allclose(tvm_rt.get_outputs()[0], reference, atol=1e-4)
    host_tflite = __import__("edgec.artifact", fromlist=["open_runtime"]).open_runtime(tflite)
    host_out = host_tflite.run([probe.probe_input(32, "NHWC")])[0]
    np.testing.assert_allclose(tflite_rt.get_outputs()[0], host_out, atol=1e-4)

    # It really ran on (emulated) aarch64, and says its timings are emulated.
    assert tvm_rt.last_info["machine"] == "aarch64" and tvm_rt.last_info["emulated"]
    assert tflite_rt.last_info["runtime"] == "litert"
    for t in (t_tvm, t_tflite):
        assert len(t.samples_ms) == 3
        assert "EMULATED" in t.covers and "not ARM latency" in t.covers


def test_an_x86_library_is_refused_before_the_emulator_starts(tmp_path):
    so = probe.write_probe_tvm(tmp_path / "probe.x86.so", 8, target="x86_64-fp32")
    with pytest.raises(EdgecError, match="built for x86_64|arm64"):
        benchmark(so, device="qemu-arm64", runs=2)


@pytest.mark.slow
def test_benchmark_result_is_labelled_emulated(arm64_artifacts):
    res = benchmark(arm64_artifacts[0], device="qemu-arm64", runs=5, warmup=1)
    assert res.device["emulated"] and res.emulated
    assert any("not ARM latency" in n for n in res.notes)
