"""The `edgec` process runs its command in a worker process it can always stop.

Python runs a signal handler only when the main thread returns to the interpreter; TVM's and
LLVM's code generation can hold it for tens of seconds, so Ctrl-C inside the compiling process
would wait for them. The parent here imports nothing heavy and does nothing but wait: on SIGINT,
SIGTERM or SIGHUP it kills the worker at once, removes the worker's staging folders (the worker
lists them in a file named by EDGEC_STAGING_LOG), prints "interrupted" and exits 128+signal.
A worker that dies from a signal of its own (a crash in native code) is reported on one line,
its staging removed, with the native trace that faulthandler saved.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from edgec.fsutil import STAGING_LOG_ENV, remove_staging_of

WORKER_ENV = "EDGEC_WORKER"  # set in the worker: run the command in-process
CRASH_LOG_ENV = "EDGEC_NATIVE_CRASH_LOG"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stop(BaseException):
    def __init__(self, signum: int):
        self.signum = signum


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def run_supervised(argv: list[str], env: dict[str, str] | None = None) -> int:
    """Run `python -m edgec.cli argv` as a worker; return its exit code, or 128+N on signal N."""
    fd, staging_log = tempfile.mkstemp(prefix="edgec-staging-", suffix=".txt")
    os.close(fd)
    fd, crash_log = tempfile.mkstemp(prefix="edgec-native-", suffix=".txt")
    os.close(fd)
    child_env = {**os.environ, **(env or {}), WORKER_ENV: "1", STAGING_LOG_ENV: staging_log,
                 CRASH_LOG_ENV: crash_log}

    def stop(signum, frame):
        raise _Stop(signum)

    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    proc = None
    try:
        try:
            proc = subprocess.Popen([sys.executable, "-m", "edgec.cli", *argv], env=child_env)
            code = proc.wait()
        except _Stop as got:
            for s in STOP_SIGNALS:  # a second Ctrl-C must not interrupt the cleanup
                signal.signal(s, signal.SIG_IGN)
            if proc is not None:
                proc.kill()
                proc.wait()
                remove_staging_of(proc.pid, Path(staging_log))
            print("interrupted", file=sys.stderr)
            return 128 + got.signum
        if code < 0:  # the worker died from a signal: a native crash, or the kernel's OOM killer
            remove_staging_of(proc.pid, Path(staging_log))
            name = signal.Signals(-code).name
            trace = Path(crash_log)
            where = (f"; its native trace is in {trace}" if trace.exists() and trace.stat().st_size
                     else "")
            why = " (out of memory?)" if -code == signal.SIGKILL else ""
            print(f"error: edgec's worker was killed by {name}{why} and wrote nothing{where}. "
                  "This is a bug in edgec or a library it uses; please report it with the command line",
                  file=sys.stderr)
            return 128 - code
        return code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        Path(staging_log).unlink(missing_ok=True)
        if proc is None or proc.returncode is None or proc.returncode >= 0:
            Path(crash_log).unlink(missing_ok=True)


def prepare_worker() -> None:
    """In the worker: the parent handles Ctrl-C; die with the parent; save native crash traces."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a SIGKILLed parent takes the worker along
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(128 + signal.SIGKILL)
    crash_log = os.environ.get(CRASH_LOG_ENV)
    if crash_log:
        import faulthandler

        # faulthandler keeps the file object's descriptor; it lives as long as the process.
        faulthandler.enable(open(crash_log, "w"), all_threads=True)  # noqa: SIM115
