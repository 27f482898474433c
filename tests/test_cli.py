"""The command line as a user meets it: one-line errors, non-zero exits, no tracebacks."""

import json
import subprocess
import sys

import onnx
import pytest
from onnx import TensorProto, helper

EDGEC = [sys.executable, "-m", "edgec.cli"]


def run(*args, cwd=None):
    return subprocess.run([*EDGEC, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def _assert_clean_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    for f in fragments:
        assert f in proc.stderr, proc.stderr


def test_targets_lists_float_targets():
    proc = run("targets")
    assert proc.returncode == 0, proc.stderr
    assert "x86_64-fp32" in proc.stdout and "arm64-fp32" in proc.stdout


def test_unknown_target_is_one_line_error(tmp_path):
    proc = run("compile", "zoo:mlp", "--target", "arm64-fp3", "-o", tmp_path)
    _assert_clean_error(proc, "unknown target 'arm64-fp3'", "arm64-fp32")


def test_missing_and_truncated_files(tmp_path):
    _assert_clean_error(run("compile", tmp_path / "none.onnx", "--target", "x86_64-fp32"), "none.onnx: no such file")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(b"\x08\x07\x12\x04abc")
    _assert_clean_error(run("compile", cut, "--target", "x86_64-fp32", "-o", tmp_path), "cut.onnx")
    _assert_clean_error(run("inspect", tmp_path / "gone.tflite"), "gone.tflite: no such file")


def test_wrong_input_shape_option(tmp_path):
    _assert_clean_error(run("compile", "zoo:mlp", "--target", "x86_64-fp32", "--input-shape", "1,x", "-o", tmp_path),
                        "--input-shape '1,x'")


def _dynamic_onnx(path):
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_dynamic_shape_asks_for_input_shape_then_compiles(tmp_path):
    model = tmp_path / "dyn.onnx"
    _dynamic_onnx(model)
    _assert_clean_error(run("compile", model, "--target", "x86_64-fp32", "-o", tmp_path / "o"), "--input-shape")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("*.tflite"))
    proc = run("compile", model, "--target", "x86_64-fp32", "-o", tmp_path / "o", "--input-shape", "x=1,3,4,4")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "o" / "dyn.x86_64-fp32.report.json").read_text())
    assert report["inputs"][0]["shape"] == [1, 3, 4, 4]
    assert report["verification"]["artifacts"]["tflite"]["vs_float"]["max_abs_error"] == 0.0


def test_unsupported_ops_listed_all_at_once(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Einsum", ["a", "a"], ["b"], name="einsum_1", equation="ij,ij->ij"),
        helper.make_node("MyOp", ["b"], ["y"], name="custom_1", domain="com.example"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    path = tmp_path / "unsup.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.example", 1)]),
              str(path))
    proc = run("compile", path, "--target", "x86_64-fp32", "--format", "tflite", "-o", tmp_path / "o")
    _assert_clean_error(proc, "einsum_1", "custom_1", "x86_64-fp32")
    assert not list((tmp_path / "o").glob("*.tflite")) if (tmp_path / "o").exists() else True


@pytest.mark.parametrize("target", ["x86_64-fp32", "arm64-fp32"])
def test_compile_and_inspect_zoo_model(tmp_path, target):
    proc = run("compile", "zoo:mlp", "--target", target, "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    tfl = tmp_path / f"mlp.{target}.tflite"
    so = tmp_path / f"mlp.{target}.so"
    assert tfl.is_file() and so.is_file()
    proc = run("inspect", tfl, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["format"] == "tflite" and info["operators"] >= 1
    proc = run("inspect", so, "--json")
    assert json.loads(proc.stdout)["elf_machine"] == ("aarch64" if target.startswith("arm64") else "x86_64")
