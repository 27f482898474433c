"""The command line's failure modes: usage errors, internal errors, and stop signals."""

import os
import signal
import subprocess
import sys
import time

import pytest

from fuzz.cli_run import EDGEC, assert_clean_failure, error_lines, run, snapshot


@pytest.mark.parametrize("args,fragment", [
    (["compile", "m.onnx", "--tagret", "x"], "No such option: --tagret"),
    (["compile", "zoo:mlp", "-t", "x86_64-fp32", "--samples", "0"], "--samples"),
    (["compile", "zoo:mlp", "-t", "x86_64-fp32", "--calib-limit", "0"], "--calib-limit"),
    (["compile"], "Missing argument"),
    (["frobnicate"], "No such command"),
    (["bench", "x.tflite", "--runs", "many"], "--runs"),
])
def test_usage_errors_are_typers_message_and_exit_2(args, fragment, tmp_path):
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and fragment in proc.stderr, proc.stderr
    assert "Usage: edgec" in proc.stderr


BOOM = ("import sys, edgec.frontends.torch_module as tm\n"
        "def boom(*a, **k): raise ZeroDivisionError('division by zero')\n"
        "tm.export_module = boom\n"
        "from edgec.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")


def _crash(tmp_path, *extra, env=None):
    return subprocess.run([sys.executable, "-c", BOOM, "compile", "zoo:mlp", "-t", "x86_64-fp32", "-o",
                           str(tmp_path / "o"), *extra], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EDGEC_WORKER": "1", "EDGEC_LOG_DIR": str(tmp_path / "logs"),
                               **(env or {})})


def test_internal_error_is_one_line_with_saved_traceback(tmp_path):
    proc = _crash(tmp_path)
    assert_clean_failure(proc, "internal error: ZeroDivisionError: division by zero",
                         "edgec/frontends/__init__.py", "--debug", code=1)
    saved = list((tmp_path / "logs").glob("crash-*.txt"))
    assert len(saved) == 1 and str(saved[0]) in proc.stderr
    assert "Traceback" in saved[0].read_text() and "boom" in saved[0].read_text()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(tmp_path, how):
    proc = _crash(tmp_path, *(["--debug"] if how == "flag" else []), env={"EDGEC_DEBUG": "1"} if how == "env" else {})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ZeroDivisionError" in proc.stderr


def _start_compile(out, model="zoo:mlp?layers=4&hidden=512", fmt="tvm"):
    return subprocess.Popen([*EDGEC, "compile", model, "-t", "x86_64-fp32", "--format", fmt, "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_staging(proc, out, limit=300):
    t0 = time.time()
    while time.time() - t0 < limit:
        staging = [d for d in out.glob(".*") if d.is_dir()] if out.exists() else []
        if staging:
            return staging
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no staging folder appeared")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130),
                                      pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)])
def test_signal_mid_lowering_stops_cleans_and_says_interrupted(tmp_path, sig, code):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("an existing file")
    before = snapshot(out)
    proc = _start_compile(out)
    _wait_for_staging(proc, out)
    time.sleep(0.3)  # inside the TVM lowering now
    t = time.time()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert time.time() - t < 2.0
    assert proc.returncode == code and "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert snapshot(out) == before


def test_sweep_removes_dead_owners_only(tmp_path):
    from edgec.fsutil import OWNER_FILE, staging_folder, sweep_stale_staging

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host = os.uname().nodename
    try:
        folders = {}
        for name, owner in [("dead", f"{dead.pid} {host}"), ("live", f"{live.pid} {host}"),
                            ("elsewhere", f"{dead.pid} another-host"), ("unowned", None)]:
            folders[name] = tmp_path / f".m.t.{name}"
            folders[name].mkdir()
            if owner:
                (folders[name] / OWNER_FILE).write_text(owner)
        (tmp_path / "m.t.tflite").write_bytes(b"artifact")
        with staging_folder(tmp_path, ".m.t.") as mine:
            assert sweep_stale_staging(tmp_path) == []  # our own live folder stays too
            assert mine.exists()
        assert not mine.exists() and not folders["dead"].exists()
        assert all(folders[n].exists() for n in ("live", "elsewhere", "unowned"))
        assert (tmp_path / "m.t.tflite").read_bytes() == b"artifact"
    finally:
        live.kill()


@pytest.mark.slow
def test_killed_run_leftovers_swept_next_time_live_ones_kept(tmp_path):
    out = tmp_path / "o"
    proc = _start_compile(out)
    staging = _wait_for_staging(proc, out)
    proc.kill()  # SIGKILL the supervisor: its worker dies with it, nothing cleans up
    proc.wait()
    time.sleep(0.5)
    assert all(d.exists() for d in staging)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        concurrent = out / ".other.x86_64-fp32.live"
        concurrent.mkdir()
        (concurrent / ".owner").write_text(f"{live.pid} {os.uname().nodename}\n")
        done = run("compile", "zoo:mlp", "-t", "x86_64-fp32", "--format", "tflite", "--no-verify", "-o", out)
        assert done.returncode == 0, done.stderr
        assert not any(d.exists() for d in staging)
        assert concurrent.exists()  # a live compile's staging stays
    finally:
        live.kill()
    assert (out / "mlp.x86_64-fp32.tflite").exists()
