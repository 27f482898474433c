"""Run an untrusted artifact in a child process, so a runtime crash cannot take edgec down.

A freshly written artifact is untrusted: a malformed file can make a runtime abort (XNNPACK's
SIGABRT in allocate_tensors) or segfault, which no Python `try` survives. Verification
therefore opens and runs artifacts in one worker process per compile,

    with ChildRuntimes() as child:
        runtime = child.open(path, io=...)       # -> IsolatedRuntime
        outputs = runtime.run(inputs)

and a dead worker becomes a ChildCrash naming the artifact, what it was doing and the
signal. Requests and replies are length-prefixed pickles over the worker's stdin and a
private copy of its stdout (the worker points fd 1 at stderr so a library that prints cannot
corrupt the stream); only this module's own worker is ever on the other end.

    python -m edgec.runtimes.child      # the worker; reads requests until stdin closes
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from edgec.errors import EdgecError, InputShapeError, ModelLoadError

_HEADER = struct.Struct("<Q")


class ChildCrash(EdgecError):
    """The worker process died (a signal or an exit) while loading or running an artifact."""


def _write(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def describe_exit(returncode: int | None) -> str:
    """'SIGABRT (signal 6)' for a process killed by a signal, 'exit status N' otherwise."""
    if returncode is None:
        return "no exit status"
    if returncode < 0:
        try:
            return f"{signal.Signals(-returncode).name} (signal {-returncode})"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class IsolatedRuntime:
    """An artifact loaded in the worker: `run`, `delegation` and the signature, as a Runtime."""

    def __init__(self, child: "ChildRuntimes", handle: int, path: Path, info: dict):
        self._child, self._handle, self.path = child, handle, path
        self.name = info["name"]
        self.input_names, self.output_names = info["inputs"], info["outputs"]
        self._has_delegation = info["has_delegation"]

    def run(self, inputs) -> list:
        return self._child.call("run", self.path, handle=self._handle, inputs=list(inputs))

    def run_all(self, samples) -> list[list]:
        """Every sample in one round trip."""
        return self._child.call("run_all", self.path, handle=self._handle, samples=[list(s) for s in samples])

    def delegation(self) -> dict | None:
        return self._child.call("delegation", self.path, handle=self._handle) if self._has_delegation else None


class ChildRuntimes:
    """One worker process; artifacts opened in it stay loaded until it is closed."""

    def __init__(self):
        self._stderr = tempfile.TemporaryFile()
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> "ChildRuntimes":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> subprocess.Popen:
        if self._proc is None:
            self._proc = subprocess.Popen([sys.executable, "-m", "edgec.runtimes.child"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._stderr)
        return self._proc

    def intermediates(self, path: str | Path, samples, tensors) -> list[dict]:
        """edgec.runtimes.litert.intermediate_tensors, run in the worker."""
        return self.call("intermediates", Path(path), file=str(path), samples=[list(s) for s in samples],
                         tensors=[int(t) for t in tensors])

    def open(self, path: str | Path, **options) -> IsolatedRuntime:
        """Load `path` in the worker (options as edgec.artifact.open_runtime, plus `io_params`:
        the (inputs, outputs) signature entries of an int8-I/O artifact, run with float I/O)."""
        path = Path(path)
        handle, info = self.call("open", path, file=str(path), options=options)
        return IsolatedRuntime(self, handle, path, info)

    def call(self, op: str, artifact: Path, **request) -> Any:
        """Send one request about `artifact` (named in the errors); returns the reply."""
        path = artifact
        proc = self._start()
        try:
            _write(proc.stdin, {"op": op, **request})
            reply = _read(proc.stdout)
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:  # the worker died: wait for its status, report what killed it
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            self._proc = None
            raise ChildCrash(f"{path}: the runtime crashed while {_DOING.get(op, op)} it ({describe_exit(code)})"
                             + self._stderr_tail())
        status, value = reply
        if status == "error":  # the runtime's own error (e.g. ModelLoadError), which names the file
            kind, message = value
            cls = _ERRORS.get(kind, EdgecError)
            raise cls(message if str(path) in message else f"{path}: {message}")
        return value

    def _stderr_tail(self, lines: int = 3) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip().splitlines()
        self._stderr.seek(0, os.SEEK_END)
        tail = [t for t in text if t.strip()][-lines:]
        return ("; runtime said: " + " | ".join(tail)) if tail else ""

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            proc.stdout.close()
        self._stderr.close()


# Errors whose class survives the trip back (one-message constructors).
_ERRORS = {cls.__name__: cls for cls in (EdgecError, ModelLoadError, InputShapeError)}
_DOING = {"open": "loading", "run": "running", "run_all": "running", "intermediates": "running",
          "delegation": "inspecting"}


# -- the worker --------------------------------------------------------------------------

def _serve(requests: BinaryIO, replies: BinaryIO) -> None:
    from edgec.artifact import FloatIO, open_runtime

    loaded: dict[int, Any] = {}
    while True:
        request = _read(requests)
        if request is None:
            return
        try:
            op = request["op"]
            if op == "open":
                options = dict(request["options"])
                io_params = options.pop("io_params", None)
                runtime = open_runtime(request["file"], **options)
                inner = runtime
                if io_params is not None:
                    runtime = FloatIO(runtime, *io_params)
                loaded[len(loaded)] = runtime
                info = {"name": runtime.name,
                        "inputs": [s.name for s in inner.inputs], "outputs": [s.name for s in inner.outputs],
                        "has_delegation": hasattr(inner, "delegation")}
                value = (len(loaded) - 1, info)
            elif op == "run":
                value = loaded[request["handle"]].run(request["inputs"])
            elif op == "run_all":
                runtime = loaded[request["handle"]]
                value = [runtime.run(x) for x in request["samples"]]
            elif op == "intermediates":
                from edgec.runtimes.litert import intermediate_tensors

                value = intermediate_tensors(request["file"], request["samples"], request["tensors"])
            elif op == "delegation":
                runtime = loaded[request["handle"]]
                value = getattr(runtime, "runtime", runtime).delegation()
            else:
                raise EdgecError(f"unknown request '{op}'")
            reply = ("ok", value)
        except Exception as e:  # noqa: BLE001 (every failure goes back to the parent as a message)
            reply = ("error", (type(e).__name__, str(e) if isinstance(e, EdgecError) else f"{type(e).__name__}: {e}"))
        _write(replies, reply)


def main() -> None:
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the reply stream
    sys.stdout = sys.stderr
    _serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
