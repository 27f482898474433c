"""WebAssembly: LiteRT.js runs a TFLite artifact in Node and in headless Chromium, matching host LiteRT.

Needs scripts/setup-wasm.sh (npm packages in .node/); the browser test also needs Debian's
chromium (scripts/setup-wasm.sh --browser). Each is skipped with that command otherwise.
"""

import numpy as np
import pytest

from edgec.artifact import open_runtime
from edgec.bench import benchmark, benchmark_vs, probe
from edgec.errors import EdgecError
from edgec.runtimes.wasm import WasmRuntime, wasm_status

node_ok, node_why = wasm_status("node")
chromium_ok, chromium_why = wasm_status("chromium")


@pytest.fixture(scope="module")
def tflite(tmp_path_factory):
    d = tmp_path_factory.mktemp("wasm")
    return probe.write_probe_tflite(d / "probe32.tflite", 32), probe.write_probe_tflite(d / "probe64.tflite", 64)


def host_output(path, x):
    return open_runtime(path).run([x])[0]


@pytest.mark.skipif(not node_ok, reason=f"node-wasm unavailable: {node_why}")
def test_node_wasm_matches_host_litert(tflite):
    x = probe.probe_input(32, "NHWC")
    rt = WasmRuntime(tflite[0], engine="node")
    timing = rt.time([x], warmup=2, repeat=10)
    np.testing.assert_allclose(rt.get_outputs()[0], host_output(tflite[0], x), rtol=1e-4, atol=1e-4)
    assert len(timing.samples_ms) == 10 and all(s > 0 for s in timing.samples_ms)
    assert "WebAssembly" in timing.covers
    assert rt.last_info["versions"]["@litertjs/core"]


@pytest.mark.skipif(not node_ok, reason=f"node-wasm unavailable: {node_why}")
def test_node_wasm_benchmark_and_interleaved_vs(tflite):
    res = benchmark(tflite[0], device="node-wasm", runs=10, warmup=2)
    assert res.device["kind"] == "wasm" and res.runtime["name"] == "litert.js (node)"
    vs = benchmark_vs(tflite[0], tflite[1], device="node-wasm", runs=15, warmup=2)
    assert vs.ratio.ratio > 1.5  # 4x the work


@pytest.mark.skipif(not node_ok, reason=f"node-wasm unavailable: {node_why}")
def test_node_wasm_refuses_threads_and_tvm_libraries(tflite, tmp_path):
    with pytest.raises(EdgecError, match="chromium-wasm"):
        WasmRuntime(tflite[0], engine="node", num_threads=4)
    with pytest.raises(EdgecError, match="TFLite"):
        WasmRuntime(tmp_path / "m.so", engine="node")


@pytest.mark.skipif(not chromium_ok, reason=f"chromium-wasm unavailable: {chromium_why}")
def test_chromium_threaded_wasm_matches_host_litert(tflite):
    x = probe.probe_input(32, "NHWC")
    rt = WasmRuntime(tflite[0], engine="chromium", num_threads=2)
    rt.time([x], warmup=2, repeat=5)
    np.testing.assert_allclose(rt.get_outputs()[0], host_output(tflite[0], x), rtol=1e-4, atol=1e-4)
    assert rt.last_info["threads"] == 2
