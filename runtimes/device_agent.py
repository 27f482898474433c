"""edgec's device agent: runs and times artifacts on the device it runs on.

It is one self-contained file (stdlib + numpy, and tvm / ai_edge_litert when an artifact
needs them; nothing from edgec), so it can be copied to a board or run under qemu-user:

    python device_agent.py run REQUEST.json      run the request, print the reply as JSON
    python device_agent.py serve --tracker HOST:9190 --key rk3588 [--host 0.0.0.0 --port 9090]
        a TVM RPC server, registered with the tracker, that also offers the agent as the
        remote function "edgec.agent.run" (JSON request in, JSON reply out), so the client
        can run TFLite artifacts with the board's LiteRT as well as TVM libraries

A request (JSON):
    {"artifacts": [{"path": "m.tflite", "format": "tflite", "inputs": ["x0.npy", ...]}, ...],
     "warmup": 10, "runs": 50, "threads": null, "outputs_dir": "out/"}
With several artifacts the runs are interleaved (A B A B ...) so that they share the
device's slow and fast phases. The reply:
    {"machine": "aarch64", "versions": {...},
     "results": [{"runtime": "litert", "threads": 4, "samples_ms": [...], "outputs": ["out/a0_0.npy"],
                  "covers": "..."}]}

The timed region is one invoke with inputs already set, measured on the device with
time.perf_counter_ns; loading and file I/O are outside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

COVERS = {
    "tflite": "one LiteRT Interpreter.invoke() with inputs already set, timed on the device; "
              "excludes load, allocate_tensors and I/O",
    "tvm": "one Relax VM invoke_stateful('main') with inputs already set, timed on the device; "
           "excludes load and I/O",
}


class _LiteRT:
    runtime = "litert"

    def __init__(self, path: str, threads: int | None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # boards often carry the slim tflite_runtime wheel instead
            from tflite_runtime.interpreter import Interpreter
        self._it = Interpreter(model_path=path, num_threads=threads)
        self._it.allocate_tensors()
        self.threads = threads

    def set_inputs(self, arrays):
        for detail, array in zip(self._it.get_input_details(), arrays):
            self._it.set_tensor(detail["index"], array.astype(detail["dtype"], copy=False))

    def invoke(self):
        self._it.invoke()

    def outputs(self):
        return [self._it.get_tensor(d["index"]) for d in self._it.get_output_details()]


class _TVM:
    runtime = "tvm"

    def __init__(self, path: str, threads: int | None):
        if threads:
            os.environ["TVM_NUM_THREADS"] = str(threads)
        import tvm
        from tvm.runtime.vm import VirtualMachine

        self._tvm = tvm
        self._dev = tvm.cpu()
        self._vm = VirtualMachine(tvm.runtime.load_module(path), self._dev)
        self.threads = int(tvm.get_global_func("runtime.NumThreads")())

    def set_inputs(self, arrays):
        self._vm.set_input("main", *[self._tvm.runtime.tensor(a, self._dev) for a in arrays])

    def invoke(self):
        self._vm.invoke_stateful("main")

    def outputs(self):
        out = self._vm.get_outputs("main")
        flat, stack = [], [out]
        while stack:  # one output is a Tensor, several are (nested) tuples
            item = stack.pop(0)
            if isinstance(item, (tuple, list)) or type(item).__name__ == "Array":
                stack[:0] = list(item)
            else:
                flat.append(item.numpy())
        return flat


_LOADERS = {"tflite": _LiteRT, "tvm": _TVM}


def run_request(request: dict) -> dict:
    warmup, runs = int(request.get("warmup", 0)), int(request.get("runs", 1))
    threads = request.get("threads")
    outputs_dir = request.get("outputs_dir") or "."
    loaded = []
    for art in request["artifacts"]:
        fmt = art.get("format") or ("tflite" if art["path"].endswith(".tflite") else "tvm")
        rt = _LOADERS[fmt](art["path"], threads)
        rt.set_inputs([np.load(p) for p in art["inputs"]])
        loaded.append((fmt, rt))
    for _ in range(warmup):
        for _, rt in loaded:
            rt.invoke()
    samples = [[] for _ in loaded]
    for _ in range(max(runs, 1)):
        for i, (_, rt) in enumerate(loaded):
            t0 = time.perf_counter_ns()
            rt.invoke()
            samples[i].append((time.perf_counter_ns() - t0) / 1e6)
    results = []
    for i, (fmt, rt) in enumerate(loaded):
        paths = []
        for j, out in enumerate(rt.outputs()):
            path = os.path.join(outputs_dir, f"a{i}_out{j}.npy")
            np.save(path, out)
            paths.append(path)
        results.append({"runtime": rt.runtime, "threads": rt.threads, "samples_ms": samples[i],
                        "outputs": paths, "covers": COVERS[fmt]})
    return {"machine": platform.machine(), "versions": _versions(), "results": results}


def _versions() -> dict:
    found = {"python": platform.python_version(), "numpy": np.__version__}
    for module, name in (("ai_edge_litert", "ai-edge-litert"), ("tvm", "apache-tvm")):
        mod = sys.modules.get(module)
        if mod is not None:
            found[name] = getattr(mod, "__version__", "?")
    return found


def _register_agent() -> None:
    """Offer run_request to RPC clients as "edgec.agent.run" (JSON request in, JSON reply out)."""
    import tvm

    def remote_run(request_json: str) -> str:
        request = json.loads(request_json)
        workpath = tvm.get_global_func("tvm.rpc.server.workpath")
        # Paths in a remote request name files uploaded into the session's work folder.
        for art in request["artifacts"]:
            art["path"] = workpath(art["path"])
            art["inputs"] = [workpath(p) for p in art["inputs"]]
        request["outputs_dir"] = workpath(request.get("outputs_dir") or "outputs")
        os.makedirs(request["outputs_dir"], exist_ok=True)
        reply = run_request(request)
        base = workpath("")
        for result in reply["results"]:  # names the client can download
            result["outputs"] = [os.path.relpath(p, base) for p in result["outputs"]]
        return json.dumps(reply)

    tvm.register_global_func("edgec.agent.run", remote_run, override=True)


def serve(args) -> None:
    # rpc.Server starts its listener in a new Python process (sys.executable). Under
    # qemu-user without binfmt an aarch64 interpreter cannot be exec'd directly, so the
    # caller names a wrapper that runs it through qemu.
    if os.environ.get("EDGEC_AGENT_PYTHON"):
        sys.executable = os.environ["EDGEC_AGENT_PYTHON"]
    from tvm import rpc

    host, port = args.tracker.rsplit(":", 1)
    # The callback runs in the listener process, before it forks a process per session.
    server = rpc.Server(host=args.host, port=args.port, port_end=args.port + 100, key=args.key,
                        tracker_addr=(host, int(port)), custom_addr=args.custom_addr, silent=True,
                        server_init_callback=_register_agent)
    print(json.dumps({"serving": args.key, "port": server.port}), flush=True)
    server.proc.join()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="device_agent", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run a request file and print the reply")
    run_p.add_argument("request")
    serve_p = sub.add_parser("serve", help="a TVM RPC server with the agent, registered at a tracker")
    serve_p.add_argument("--tracker", required=True, help="HOST:PORT of the TVM RPC tracker")
    serve_p.add_argument("--key", required=True, help="device key the client requests, e.g. rk3588")
    serve_p.add_argument("--host", default="0.0.0.0")
    serve_p.add_argument("--port", type=int, default=9090)
    serve_p.add_argument("--custom-addr", default=None, help="address to report to the tracker")
    args = parser.parse_args(argv)
    if args.command == "run":
        with open(args.request) as f:
            reply = run_request(json.load(f))
        print(json.dumps(reply))
    else:
        serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
