"""onnx's backend node tests of every op the TFLite registry claims, through both lowerings.

A case passes when the artifact's outputs match onnx's expected ones, or when the lowering
refuses it with an EdgecError naming the node's op and why; a crash or a wrong number fails.
benchmarks/onnx_node_conformance.py runs the same cases and writes the table by op.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "onnx_node_conformance.py"
_spec = importlib.util.spec_from_file_location("onnx_node_conformance", HARNESS)
conformance = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = conformance  # its dataclasses look their module up by name
_spec.loader.exec_module(conformance)

CASES = {t.name: t for t in conformance.claimed_tests(conformance.tflite_claimed_ops())}


def _check(name: str, fmt: str, tmp_path: Path) -> None:
    outcome = conformance.run_case(CASES[name], fmt, tmp_path)
    assert outcome.status != conformance.FAILED, outcome.detail


def test_the_claimed_ops_have_node_tests():
    # The harness finds onnx's tests (shipped or generated) and the registry's ops match them.
    ops = {t.op for t in CASES.values()}
    assert len(CASES) > 300
    assert {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "Resize", "MatMul", "Reshape"} <= ops


@pytest.mark.parametrize("name", sorted(CASES))
def test_tflite_matches_onnx_or_refuses_by_name(name, tmp_path):
    _check(name, "tflite", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_tvm_matches_onnx_or_refuses_by_name(name, tmp_path):
    _check(name, "tvm", tmp_path)


def test_a_wrong_number_fails_a_case():
    expected = [conformance.np.ones((2, 3), conformance.np.float32)]
    assert conformance.compare([expected[0] + 1e-2], expected, 1e-3, 1e-7).startswith("wrong number")
    assert conformance.compare([expected[0][:1]], expected, 1e-3, 1e-7).startswith("wrong number")
    assert conformance.compare([expected[0]], expected, 1e-3, 1e-7) == ""
