"""Verification runs the freshly written artifact in a child process: a runtime crash is a
VerificationError naming the artifact and the signal, and nothing is left in the output folder."""

from __future__ import annotations

import os
import signal

import pytest

import edgec
from edgec import zoo
from edgec.errors import VerificationError
from edgec.runtimes.child import IsolatedRuntime


def test_a_crashing_runtime_fails_verification_and_leaves_nothing(tmp_path, monkeypatch):
    real = IsolatedRuntime.run_all

    def abort_then_run(self, samples):
        os.kill(self._child._proc.pid, signal.SIGABRT)  # as XNNPACK aborts on a bad file
        return real(self, samples)

    monkeypatch.setattr(IsolatedRuntime, "run_all", abort_then_run)
    z = zoo.build("mlp")
    with pytest.raises(VerificationError, match=r"mlp\.x86_64-fp32\.tflite: the runtime crashed while running "
                                                r"it \(SIGABRT \(signal 6\)\)"):
        edgec.compile(z.module, example_inputs=z.example_inputs, target="x86_64-fp32", out_dir=tmp_path,
                      name="mlp", formats=["tflite"])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no artifact, no staging folder


@pytest.mark.slow  # the happy path is also every zoo compile's; this checks the report's fields
def test_verified_artifact_ran_in_the_child(tmp_path):
    z = zoo.build("mlp")
    art = edgec.compile(z.module, example_inputs=z.example_inputs, target="x86_64-fp32", out_dir=tmp_path,
                        name="mlp", formats=["tflite"])
    entry = art.report["verification"]["artifacts"]["tflite"]
    assert entry["ran"] and entry["vs_float"]["max_rel_error"] < 1e-4
    assert entry["xnnpack"]["fraction"] == 1.0
