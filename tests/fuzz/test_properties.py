"""Property-based fuzzing of the parsers that read user input: whatever the bytes or text, the
answer is a result or an EdgecError naming the input, never another exception."""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgec.errors import EdgecError, InputShapeError
from edgec.frontends.pt2_safety import safe_expression
from edgec.frontends.shapes import normalize_input_shapes, parse_input_shapes
from fuzz.files import tiny_onnx, tiny_tflite

# EDGEC_FUZZ_PROFILE=wide (make fuzz) runs 20x the examples of the default test run.
settings.register_profile("edgec-default", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.register_profile("edgec-wide", max_examples=800, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
FAST = settings.get_profile("edgec-wide" if os.environ.get("EDGEC_FUZZ_PROFILE") == "wide" else "edgec-default")


@FAST
@given(st.lists(st.text(alphabet="0123456789,x=ab-. ", max_size=16), max_size=3))
def test_input_shape_text(specs):
    try:
        shapes = parse_input_shapes(specs)
    except InputShapeError as exc:
        assert "--input-shape" in str(exc)
        return
    assert all(dims and all(isinstance(d, int) and d > 0 for d in dims) for dims in shapes.values())


@FAST
@given(st.recursive(st.none() | st.integers(-3, 9) | st.floats() | st.text(max_size=6) | st.booleans(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
                    max_leaves=8))
def test_api_input_shapes_objects(value):
    try:
        shapes = normalize_input_shapes(value)
    except InputShapeError:
        return
    assert all(all(isinstance(d, int) and d > 0 for d in dims) for dims in shapes.values())


@FAST
@given(st.text(alphabet="sSymbolIntegerMaxexec()'_.,+*/ 0123456789=abcdefghijklmnopqrstuvwxyz", max_size=40))
def test_accepted_shape_expressions_evaluate_without_code(text):
    """What the .pt2 guard accepts, sympy evaluates to numbers/symbols only: no name outside sympy."""
    if not safe_expression(text):
        return
    import sympy

    called = []
    try:
        sympy.sympify(text, locals={"__builtins__": {"__import__": lambda *a: called.append(a)}})
    except Exception:  # a syntax error is fine: torch then refuses the file
        pass
    assert not called


@FAST
@given(hnp.arrays(dtype=st.sampled_from([np.float32, np.float64, np.int8, np.uint8, np.bool_, np.complex64]),
                  shape=hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4),
                  ))
def test_calibration_arrays(array):
    from edgec.quantization.calibration import CalibrationError, load_calibration

    model = _tiny_model()
    try:
        data = load_calibration(array, model)
    except CalibrationError as exc:
        assert "cannot use the calibration array as calibration data" in str(exc)
        return
    assert all(np.isfinite(s[0]).all() and s[0].shape == (1, 3, 8, 8) for s in data.samples)


_MODEL = {}


def _tiny_model():
    if "m" not in _MODEL:
        import tempfile

        from edgec.frontends.onnx_file import load_onnx

        folder = Path(tempfile.mkdtemp())
        _MODEL["m"] = load_onnx(tiny_onnx(folder / "m.onnx"))
    return _MODEL["m"]


def _mutations():
    return st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8)


@FAST
@given(_mutations(), st.integers(0, 4000))
def test_mutated_tflite_inspects_or_is_refused(tmp_path_factory, edits, cut):
    from edgec.inspect_artifact import inspect_artifact

    folder = tmp_path_factory.mktemp("tfl", numbered=True)
    data = bytearray(tiny_tflite(folder / "good.tflite").read_bytes())
    for offset, value in edits:
        data[offset % len(data)] = value
    path = folder / "mutated.tflite"
    path.write_bytes(bytes(data[: max(cut, 8)]) if cut < len(data) else bytes(data))
    try:
        info = inspect_artifact(path)
    except EdgecError as exc:
        assert str(path) in str(exc)
        return
    assert info["format"] == "tflite" and info["subgraphs"] >= 1


@FAST
@given(_mutations())
def test_mutated_onnx_loads_or_is_refused(tmp_path_factory, edits):
    from edgec.frontends import load_model

    folder = tmp_path_factory.mktemp("onnx", numbered=True)
    data = bytearray(tiny_onnx(folder / "good.onnx").read_bytes())
    for offset, value in edits:
        data[offset % len(data)] = value
    path = folder / "mutated.onnx"
    path.write_bytes(bytes(data))
    try:
        load_model(path)
    except EdgecError as exc:
        assert str(path) in str(exc)
