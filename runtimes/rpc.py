"""Boards behind an Apache TVM RPC tracker: the standard way to run on a farm of devices.

    python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port 9190            (one, anywhere)
    python device_agent.py serve --tracker TRACKER:9190 --key rk3588     (on each board)

The client asks the tracker for a free board with the device's key, uploads the artifact
into the session and runs it there:
  - a TVM library: `load_module`, the Relax VM over RPC, and TVM's `time_evaluator`, which
    times on the board (number=1: one sample per invoke), so the network is not in the samples;
  - a TFLite file: the board's LiteRT through the agent's remote function "edgec.agent.run"
    (runtimes/device_agent.py), which times on the board the same way.
A plain `python -m tvm.exec.rpc_server` runs TVM libraries; TFLite needs the agent.
"""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import numpy as np

from edgec.errors import EdgecError
from edgec.runtimes.remote import BatchReply, BatchRuntime

COVERS_TVM = ("one Relax VM invoke_stateful('main') on the board with inputs already there, timed on "
              "the board by TVM's time_evaluator (number=1); excludes upload, load and transfers")
AGENT_FUNCTION = "edgec.agent.run"


def parse_address(address: str, default_port: int = 9190) -> tuple[str, int]:
    host, _, port = str(address).rpartition(":")
    if not host:
        return str(address), default_port
    return host, int(port)


def tracker_status(tracker: str, key: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """(reachable, why): is the tracker up, and does it know a server with this key?"""
    host, port = parse_address(tracker)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        return False, (f"no TVM RPC tracker at {host}:{port} ({exc.strerror or exc}); start one with "
                       f"`python -m tvm.exec.rpc_tracker --port {port}` and the board's server with "
                       f"`python runtimes/device_agent.py serve --tracker {host}:{port} --key {key}`")
    from tvm import rpc

    summary = rpc.connect_tracker(host, port).summary()
    # A server's connection is listed as {"key": "server:<key>", ...}; the queue holds free ones.
    servers = [s for s in summary.get("server_info", []) if s.get("key", "").split(":", 1)[-1] == key]
    if not servers:
        known = sorted({s.get("key", "").split(":", 1)[-1] for s in summary.get("server_info", [])})
        return False, (f"tracker {host}:{port} is up but no server has key '{key}' "
                       f"(keys there: {', '.join(known) or 'none'}); start one on the board with "
                       f"`python runtimes/device_agent.py serve --tracker {host}:{port} --key {key}`")
    free = summary.get("queue_info", {}).get(key, {}).get("free", 0)
    return True, f"tracker {host}:{port}: key '{key}' has {len(servers)} server(s), {free} free"


class RPCRuntime(BatchRuntime):
    name = "tvm-rpc"

    def __init__(self, path: str | Path, tracker: str = "127.0.0.1:9190", key: str = "",
                 num_threads: int | None = None, session_timeout_s: int = 600, priority: int = 1):
        super().__init__(path)
        if not key:
            raise EdgecError("RPC device needs a key (devices.yaml: key: rk3588)")
        self.tracker, self.key, self.num_threads = tracker, key, num_threads
        ok, why = tracker_status(tracker, key)
        if not ok:
            raise EdgecError(f"RPC device '{key}' is not reachable: {why}")
        import tvm

        self._tvm = tvm
        self.session_timeout_s, self.priority = session_timeout_s, priority
        # A board serves one session at a time, so the session is opened on first use and
        # closed by close(): an idle runtime must not keep a board from the rest of the farm.
        # Interleaved --vs runs both artifacts in the first runtime's session.
        self.session = None
        self._loaded: dict[Path, object] = {}  # artifact -> VM (TVM) or uploaded name (TFLite)
        self.runtime_name = "litert" if self.path.suffix == ".tflite" else "tvm"

    def _connect(self):
        if self.session is None:
            from tvm import rpc

            host, port = parse_address(self.tracker)
            try:
                self.session = rpc.connect_tracker(host, port).request(
                    self.key, priority=self.priority, session_timeout=self.session_timeout_s)
            except Exception as exc:  # noqa: BLE001 - every failure here is "board not reachable"
                raise EdgecError(f"could not get a session for key '{self.key}' from tracker "
                                 f"{self.tracker}: {exc}") from None
            self.device = self.session.cpu()
            if self.num_threads:
                self.session.get_function("runtime.config_threadpool")(1, self.num_threads)
        return self.session

    def close(self) -> None:
        """Give the board back to the tracker (the session ends when nothing refers to it)."""
        import gc

        self._loaded.clear()
        self.session = self.device = None
        # The Relax VM's Python wrapper sits in a reference cycle; until it is collected it
        # keeps the remote module, and so the session, alive.
        gc.collect()

    def same_device(self, other: "RPCRuntime") -> bool:
        return (self.tracker, self.key) == (other.tracker, other.key)

    def _batch(self, jobs, warmup, runs):
        # Everything runs in this runtime's session, so interleaved jobs share one board.
        self._connect()
        kinds = {rt.path.suffix for rt, _ in jobs}
        if kinds == {".so"}:
            return self._batch_tvm(jobs, warmup, runs)
        if kinds == {".tflite"}:
            return self._batch_agent(jobs, warmup, runs)
        raise EdgecError("--vs over RPC needs two artifacts of the same kind (.so or .tflite)")

    # -- TVM libraries: TVM's own remote execution -------------------------------------------

    def _vm(self, path: Path):
        if path not in self._loaded:
            from tvm.runtime.vm import VirtualMachine

            self.session.upload(str(path))
            self._loaded[path] = VirtualMachine(self.session.load_module(path.name), self.device)
        return self._loaded[path]

    def _batch_tvm(self, jobs, warmup, runs):
        vms = []
        for rt, arrays in jobs:
            vm = self._vm(rt.path)
            vm.set_input("main", *[self._tvm.runtime.tensor(a, self.device) for a in arrays])
            vms.append(vm)
        for _ in range(warmup):
            for vm in vms:
                vm.invoke_stateful("main")
        if len(vms) == 1:
            timer = vms[0].time_evaluator("invoke_stateful", self.device, number=1, repeat=max(runs, 1))
            samples = [[s * 1e3 for s in timer("main").results]]
        else:
            timers = [vm.time_evaluator("invoke_stateful", self.device, number=1, repeat=1) for vm in vms]
            samples = [[] for _ in vms]
            for _ in range(max(runs, 1)):
                for i, timer in enumerate(timers):
                    samples[i].extend(s * 1e3 for s in timer("main").results)
        threads = int(self.session.get_function("runtime.NumThreads")())
        return [BatchReply(samples_ms=s, outputs=_numpy_outputs(vm.get_outputs("main")), covers=COVERS_TVM,
                           info={"runtime": "tvm", "threads": threads, "key": self.key})
                for vm, s in zip(vms, samples)]

    # -- TFLite files: the board's LiteRT through edgec's agent --------------------------------

    def _agent(self):
        try:
            return self.session.get_function(AGENT_FUNCTION)
        except Exception:  # noqa: BLE001 - TVM raises a generic error for a missing function
            raise EdgecError(
                f"the RPC server for key '{self.key}' runs TVM libraries only: TFLite needs edgec's agent. "
                f"Start the board's server with `python runtimes/device_agent.py serve --tracker {self.tracker} --key {self.key}` "
                "(runtimes/device_agent.py; needs ai-edge-litert or tflite-runtime on the board)"
            ) from None

    def _batch_agent(self, jobs, warmup, runs):
        agent = self._agent()
        artifacts = []
        for i, (rt, arrays) in enumerate(jobs):
            if rt.path not in self._loaded:
                self.session.upload(str(rt.path))
                self._loaded[rt.path] = rt.path.name
            names = []
            for j, array in enumerate(arrays):
                buf = io.BytesIO()
                np.save(buf, array)
                names.append(f"a{i}_in{j}.npy")
                self.session.upload(bytearray(buf.getvalue()), names[-1])
            artifacts.append({"path": self._loaded[rt.path], "format": "tflite", "inputs": names})
        request = {"artifacts": artifacts, "warmup": warmup, "runs": runs, "threads": self.num_threads}
        reply = json.loads(agent(json.dumps(request)))
        return [
            BatchReply(samples_ms=r["samples_ms"],
                       outputs=[np.load(io.BytesIO(bytes(self.session.download(p)))) for p in r["outputs"]],
                       covers=r["covers"],
                       info={"runtime": r["runtime"], "threads": r["threads"], "machine": reply["machine"],
                             "versions": reply["versions"], "key": self.key})
            for r in reply["results"]
        ]


def _numpy_outputs(value) -> list[np.ndarray]:
    if isinstance(value, (tuple, list)) or type(value).__name__ == "Array":
        return [a for item in value for a in _numpy_outputs(item)]
    return [value.numpy()]
