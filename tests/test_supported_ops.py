"""The supported-ops table is generated from the lowering registries and agrees with them."""

import subprocess
import sys
from pathlib import Path

import pytest

from edgec.lower.tflite import registry, unsupported_nodes
from edgec.supported_ops import onnx_ops, pass_removals, render_markdown, supported_ops
from helpers import build_model

from onnx import helper

DOC = Path(__file__).resolve().parent.parent / "docs" / "supported-ops.md"


@pytest.fixture(scope="module")
def rows():
    return {r.op: r for r in supported_ops()}


def test_committed_doc_is_the_generated_one(rows):
    # Regenerate with: .venv/bin/python scripts/generate_supported_ops.py
    assert DOC.read_text() == render_markdown(list(rows.values()))


def test_every_onnx_op_has_a_row(rows):
    assert {op for op, _, _ in onnx_ops()} == set(rows)
    assert "Conv" in rows and "Attention" in rows  # old and new ops alike


def test_tflite_column_is_the_registry_plus_what_passes_remove(rows):
    lowered = {op for op, r in rows.items() if r.tflite.lowers}
    assert lowered == (set(registry.VISITORS) | set(pass_removals())) & set(rows)
    # GatherND has no visitor: the recipe's rewrite_constant_gathers pass removes it.
    assert "rewrite_constant_gathers" in rows["GatherND"].tflite.conditions
    assert rows["Conv"].tflite.int8 is not None
    assert rows["Div"].tflite.int8 is None  # registered float only


def test_a_newly_registered_visitor_shows_up_with_its_check_text(rows):
    assert not rows["Acosh"].tflite.lowers

    def check(node):
        """x must be positive (test condition)."""
        return None

    registry.visitor("Acosh", check=check)(lambda node, ctx: None)
    try:
        row = next(r for r in supported_ops(("tflite",)) if r.op == "Acosh")
        assert row.tflite.lowers and row.tflite.cell() == "yes: x must be positive (test condition)."
    finally:
        del registry.VISITORS["Acosh"]


def test_table_says_what_the_lowering_refuses():
    # Gelu's stated condition (approximate is 'none' or 'tanh') is the check the lowering applies.
    assert "'none' or 'tanh'" in registry.VISITORS["Gelu"].conditions()
    model = build_model([helper.make_node("Gelu", ["x"], ["y"], approximate="bogus", domain="")], {"x": [1, 4]},
                        {"y": [1, 4]})
    (problem,) = unsupported_nodes(model)
    assert problem[1] == "Gelu" and "approximate='bogus'" in problem[2]


def test_tvm_column_follows_relax_converters(rows):
    from tvm.relax.frontend.onnx import onnx_frontend

    converters = set(onnx_frontend._get_convert_map())
    for op, r in rows.items():
        assert r.tvm.lowers == (op in converters or op in ("If", "Constant")), op


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edgec.cli", "ops", *args], capture_output=True, text=True,
                          timeout=300, env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"})


def test_edgec_ops_for_an_int8_target_shows_int8_support():
    proc = _cli("--target", "x86_64-int8")
    assert proc.returncode == 0, proc.stderr
    assert "TFLite int8" in proc.stdout and "TFLite fp32" not in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "│ Div " in ln)
    assert "float only" in line


def test_edgec_ops_unknown_target_is_a_clean_error():
    proc = _cli("--target", "nope-fp32")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "unknown target 'nope-fp32'" in proc.stderr
