"""TVM RPC on loopback: a tracker, a board server running edgec's agent, and a client.

The fast tests use the host's own Python as the "board" (a TVM library built for x86_64);
the slow one stands the qemu-arm64 userland in for a real ARM board, with an arm64 library.
Every process listens on 127.0.0.1 only and is stopped at the end.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tornado", reason="TVM's RPC tracker needs tornado psutil cloudpickle: pip install 'edgec[rpc]'")
pytest.importorskip("psutil")
pytest.importorskip("cloudpickle")

from edgec.bench import benchmark, benchmark_vs  # noqa: E402
from edgec.bench import probe  # noqa: E402
from edgec.errors import EdgecError  # noqa: E402
from edgec.runtimes.rpc import RPCRuntime, tracker_status  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "runtimes" / "device_agent.py"
KEY = "edgec-loopback"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, **kw) -> subprocess.Popen:
    # Own session: the RPC server forks helpers, and the group is stopped together.
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for_key(tracker: str, key: str, procs, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"RPC process exited early: {p.stderr.read()[-2000:]}")
        ok, _ = tracker_status(tracker, key, timeout_s=1)
        if ok:
            return
        time.sleep(0.5)
    pytest.fail(f"no server registered key '{key}' at {tracker} within {timeout_s} s")


def rpc_farm(python: list[str], key: str, timeout_s: float):
    port = free_port()
    tracker_addr = f"127.0.0.1:{port}"
    tracker = start([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                     "--port", str(port), "--port-end", str(port + 1), "--silent"])
    server = start(python + [str(AGENT), "serve", "--tracker", tracker_addr, "--key", key,
                             "--host", "127.0.0.1", "--port", str(free_port())])
    try:
        wait_for_key(tracker_addr, key, [tracker, server], timeout_s)
    except BaseException:
        stop(server)
        stop(tracker)
        raise
    return tracker_addr, [server, tracker]


@pytest.fixture(scope="module")
def farm():
    tracker_addr, procs = rpc_farm([sys.executable], KEY, timeout_s=60)
    yield tracker_addr
    for p in procs:
        stop(p)


@pytest.fixture(scope="module")
def devices_yaml(farm, tmp_path_factory):
    path = tmp_path_factory.mktemp("rpc") / "devices.yaml"
    path.write_text(f"""
targets: {{}}
devices:
  host: {{kind: host, arch: x86_64, runtimes: [litert, tvm]}}
  board: {{kind: rpc, arch: x86_64, runtimes: [tvm, litert], tracker: "{farm}", key: {KEY},
          session_timeout_s: 60}}
  nowhere: {{kind: rpc, arch: arm64, tracker: "127.0.0.1:{free_port()}", key: none}}
""")
    return path


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    d = tmp_path_factory.mktemp("rpc-art")
    return {
        "so": probe.write_probe_tvm(d / "p32.so", 32, target="x86_64-fp32"),
        "so_large": probe.write_probe_tvm(d / "p64.so", 64, target="x86_64-fp32"),
        "tflite": probe.write_probe_tflite(d / "p32.tflite", 32),
    }


def test_tvm_module_runs_end_to_end_over_rpc(farm, artifacts):
    rt = RPCRuntime(artifacts["so"], tracker=farm, key=KEY, session_timeout_s=60)
    x = probe.probe_input(32)
    np.testing.assert_allclose(rt.run([x])[0], probe.probe_reference(x), atol=1e-4)
    timing = rt.time([x], warmup=2, repeat=8)
    rt.close()  # the loopback farm has one server: give it back for the next test
    assert len(timing.samples_ms) == 8 and all(s > 0 for s in timing.samples_ms)
    assert "time_evaluator" in timing.covers


def test_tflite_runs_over_rpc_through_the_agent(farm, artifacts):
    rt = RPCRuntime(artifacts["tflite"], tracker=farm, key=KEY, session_timeout_s=60)
    x = probe.probe_input(32, "NHWC")
    np.testing.assert_allclose(rt.run([x])[0], probe.probe_reference(probe.probe_input(32)).transpose(0, 2, 3, 1),
                               atol=1e-4)
    rt.close()
    assert rt.last_info["runtime"] == "litert"


def test_benchmark_on_an_rpc_device_from_devices_yaml(devices_yaml, artifacts):
    res = benchmark(artifacts["so"], device="board", runs=10, warmup=2, devices=devices_yaml)
    assert res.device["kind"] == "rpc" and res.device["machine"]["key"] == KEY
    assert res.runtime["name"] == "tvm" and len(res.samples_ms) == 10
    vs = benchmark_vs(artifacts["so"], artifacts["so_large"], device="board", runs=10, warmup=2,
                      devices=devices_yaml)
    assert vs.ratio.ratio > 1.5  # 4x the work


def test_unreachable_tracker_says_what_to_start(devices_yaml, artifacts):
    with pytest.raises(EdgecError, match="rpc_tracker"):
        benchmark(artifacts["so"], device="nowhere", runs=3, devices=devices_yaml)


@pytest.mark.slow
def test_qemu_server_stands_in_for_an_arm_board(tmp_path):
    from edgec.runtimes.qemu import qemu_root, qemu_status

    ok, why = qemu_status()
    if not ok:
        pytest.skip(f"qemu-arm64 unavailable: {why}")
    so = probe.write_probe_tvm(tmp_path / "p.arm64.so", 32, target="arm64-fp32")
    tfl = probe.write_probe_tflite(tmp_path / "p.tflite", 32)
    # Two aarch64 interpreters start under emulation (server and its listener): ~1 min.
    tracker_addr, procs = rpc_farm([str(qemu_root() / "bin" / "python3")], "qemu-board", timeout_s=240)
    try:
        x = probe.probe_input(32)
        rt = RPCRuntime(so, tracker=tracker_addr, key="qemu-board")
        np.testing.assert_allclose(rt.run([x])[0], probe.probe_reference(x), atol=1e-4)
        assert len(rt.time([x], warmup=1, repeat=3).samples_ms) == 3
        rt.close()
        rt2 = RPCRuntime(tfl, tracker=tracker_addr, key="qemu-board")
        y = rt2.run([probe.probe_input(32, "NHWC")])[0]
        np.testing.assert_allclose(y, probe.probe_reference(x).transpose(0, 2, 3, 1), atol=1e-4)
        assert rt2.last_info["machine"] == "aarch64"
        rt2.close()
    finally:
        for p in procs:
            stop(p)


def test_agent_file_is_standalone():
    # The agent is copied to boards: it must not import edgec.
    import re

    assert not re.search(r"^\s*(import|from)\s+edgec", AGENT.read_text(), re.MULTILINE)
