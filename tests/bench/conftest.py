"""Probe artifacts (edgec/bench/probe.py) shared by the bench tests, built once per session."""

import pytest

from edgec.bench import probe

# The probe's cost grows with size^2: 96 is about 9x the work of 32, the "deliberately
# slower" artifact of the gate tests.
SMALL, LARGE = 32, 96


@pytest.fixture(scope="session")
def probe_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("probes")


@pytest.fixture(scope="session")
def small_tflite(probe_dir):
    return probe.write_probe_tflite(probe_dir / f"probe{SMALL}.tflite", SMALL)


@pytest.fixture(scope="session")
def large_tflite(probe_dir):
    return probe.write_probe_tflite(probe_dir / f"probe{LARGE}.tflite", LARGE)


@pytest.fixture(scope="session")
def small_onnx(probe_dir):
    return probe.write_probe_onnx(probe_dir / f"probe{SMALL}.onnx", SMALL)


@pytest.fixture(scope="session")
def small_tvm(probe_dir):
    return probe.write_probe_tvm(probe_dir / f"probe{SMALL}.x86_64.so", SMALL, target="x86_64-fp32")
