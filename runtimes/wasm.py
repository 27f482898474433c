"""WebAssembly: LiteRT's wasm build (@litertjs/core, XNNPACK compiled to wasm) in Node or Chromium.

    engine="node"      node runtimes/js/node_runner.mjs     single-threaded wasm build
    engine="chromium"  node runtimes/js/browser_runner.mjs  headless Chromium (playwright-core),
                                                          cross-origin isolated, so the threaded
                                                          build runs when num_threads > 1

Both load the same runtimes/js/litert_bench.mjs, which times each compiledModel.run() in
the JS engine itself. The npm packages live in .node/ (scripts/setup-wasm.sh); the browser is
Debian's chromium (scripts/setup-wasm.sh --browser). Each round trip starts a Node process
(and a browser): about 0.3 s for Node, 2 s for Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgec.errors import EdgecError
from edgec.runtimes.remote import BatchReply, BatchRuntime, tail

JS_DIR = Path(__file__).with_name("js")
DEFAULT_NODE_DIR = Path(__file__).resolve().parent.parent / ".node"
SETUP = "scripts/setup-wasm.sh"
ENGINES = ("node", "chromium")
TIMEOUT_S = 900
_DTYPES = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8, "int32": np.int32,
           "int16": np.int16, "int64": np.int64, "bool": np.bool_}


def node_dir(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get("EDGEC_NODE_DIR") or DEFAULT_NODE_DIR)


def chromium_path() -> str | None:
    return os.environ.get("EDGEC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def wasm_status(engine: str = "node", root: str | Path | None = None) -> tuple[bool, str]:
    """(reachable, why) for a wasm engine, without starting it."""
    if engine not in ENGINES:
        return False, f"unknown wasm engine '{engine}'; expected one of {', '.join(ENGINES)}"
    node = shutil.which("node")
    if node is None:
        return False, "node not installed; install Node.js 20 (Debian: nodejs npm), then run " + SETUP
    core = node_dir(root) / "node_modules" / "@litertjs" / "core"
    if not (core / "wasm").is_dir():
        return False, f"@litertjs/core missing in {node_dir(root)}; run {SETUP}"
    if engine == "chromium":
        if not (node_dir(root) / "node_modules" / "playwright-core").is_dir():
            return False, f"playwright-core missing in {node_dir(root)}; run {SETUP}"
        if chromium_path() is None:
            return False, f"chromium not installed; run {SETUP} --browser (or set EDGEC_CHROMIUM)"
        return True, f"headless {chromium_path()} + LiteRT.js from {core}"
    return True, f"{node} + LiteRT.js from {core}"


class WasmRuntime(BatchRuntime):
    name = "litert-wasm"

    def __init__(self, path: str | Path, engine: str = "node", num_threads: int | None = None,
                 root: str | Path | None = None):
        ok, why = wasm_status(engine, root)
        if not ok:
            raise EdgecError(f"wasm engine '{engine}' is not available: {why}")
        if Path(path).suffix != ".tflite":
            raise EdgecError(f"{path}: the wasm devices run TFLite files (LiteRT.js); compile a wasm-* "
                             "or *-fp32 target's .tflite artifact")
        if engine == "node" and num_threads not in (None, 1):
            raise EdgecError("node-wasm runs LiteRT.js's single-threaded build; for threads use "
                             "--device chromium-wasm")
        super().__init__(path)
        self.engine, self.num_threads, self.root = engine, num_threads, node_dir(root)
        self.runtime_name = f"litert.js ({engine})"

    def same_device(self, other: "WasmRuntime") -> bool:
        return self.engine == other.engine

    def _batch(self, jobs, warmup, runs):
        core = self.root / "node_modules" / "@litertjs" / "core"
        with tempfile.TemporaryDirectory(prefix="edgec-wasm-") as tmp:
            tmp = Path(tmp)
            request_jobs = []
            for i, (rt, arrays) in enumerate(jobs):
                inputs = []
                for j, array in enumerate(arrays):
                    p = tmp / f"a{i}_in{j}.bin"
                    array.tofile(p)
                    inputs.append({"path": str(p), "shape": list(array.shape), "dtype": array.dtype.name})
                request_jobs.append({"model": str(rt.path.resolve()), "inputs": inputs})
            request = {"wasm_dir": str(core / "wasm"), "core": str(core / "dist" / "index.js"),
                       "jobs": request_jobs, "warmup": warmup, "runs": runs, "threads": self.num_threads,
                       "outputs_dir": str(tmp), "chromium": chromium_path()}
            (tmp / "request.json").write_text(json.dumps(request))
            runner = "node_runner.mjs" if self.engine == "node" else "browser_runner.mjs"
            try:
                proc = subprocess.run(["node", str(JS_DIR / runner), str(tmp / "request.json")],
                                      capture_output=True, text=True, timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise EdgecError(f"{self.engine}-wasm: {self.path.name} did not finish within {TIMEOUT_S} s") from None
            if proc.returncode != 0:
                raise EdgecError(f"{self.engine}-wasm: the runner failed on {self.path.name} "
                                 f"(exit {proc.returncode}):\n{tail(proc.stderr + proc.stdout)}")
            reply = json.loads(proc.stdout.strip().splitlines()[-1])
            replies = []
            for r in reply["results"]:
                outputs = [np.fromfile(o["path"], dtype=_DTYPES[o["dtype"]]).reshape(o["shape"]) for o in r["outputs"]]
                replies.append(BatchReply(samples_ms=r["samples_ms"], outputs=outputs, covers=r["covers"],
                                          info={"runtime": f"litert.js ({reply['engine']})", "threads": reply["threads"],
                                                "versions": reply["versions"]}))
            return replies
