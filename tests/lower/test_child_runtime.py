"""Artifacts run in a child process: same outputs as in-process, and a crash is a named error."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from edgec.errors import ModelLoadError
from edgec.lower.tflite import lower_tflite
from edgec.runtimes import child
from edgec.runtimes.child import ChildCrash, ChildRuntimes, describe_exit
from edgec.runtimes.litert import LiteRTRuntime
from edgec.targets import get_target
from tflite_cases import Case, node, rand


@pytest.fixture(scope="module")
def conv_file(tmp_path_factory):
    model = Case([node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], {"x": (1, 3, 8, 8)},
                 consts={"w": rand(4, 3, 3, 3)}).model()
    path = tmp_path_factory.mktemp("child") / "conv.tflite"
    lower_tflite(model, get_target("x86_64-fp32"), path)
    return path


def test_child_runs_the_artifact_as_in_process(conv_file):
    x = [rand(1, 3, 8, 8, seed=7)]
    want = LiteRTRuntime(conv_file).run(x)
    with ChildRuntimes() as workers:
        runtime = workers.open(conv_file)
        got = runtime.run(x)
        assert runtime.output_names == ["y"]
        assert runtime.delegation()["fraction"] == 1.0
        again = workers.open(conv_file).run_all([x, x])  # one worker, several artifacts
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(again[1][0], want[0])


def test_a_file_that_does_not_load_keeps_its_error_class(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with ChildRuntimes() as workers, pytest.raises(ModelLoadError, match="bad.tflite"):
        workers.open(bad)


def test_a_runtime_crash_is_a_named_error_not_a_dead_edgec(conv_file, monkeypatch):
    with ChildRuntimes() as workers:
        runtime = workers.open(conv_file)
        os.kill(workers._proc.pid, signal.SIGABRT)  # what XNNPACK's abort does to the worker
        with pytest.raises(ChildCrash, match=r"conv.tflite: the runtime crashed while running it \(SIGABRT"):
            runtime.run([rand(1, 3, 8, 8)])
        # The next request starts a fresh worker.
        assert workers.open(conv_file).run([rand(1, 3, 8, 8)])[0].shape == (1, 4, 8, 8)


def test_exit_descriptions():
    assert describe_exit(-signal.SIGSEGV) == "SIGSEGV (signal 11)"
    assert describe_exit(3) == "exit status 3"
    assert child.describe_exit(None) == "no exit status"
