"""Bad calibration data, out-of-range options and unusable output paths: refused before any work,
with one message naming the file/option, and nothing written."""

import numpy as np
import pytest

import edgec
from edgec.errors import EdgecError
from fuzz.cli_run import assert_clean_failure, run, snapshot
from fuzz.files import calibration_files, tiny_onnx, unwritable_folder


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    return {"dir": folder, "model": tiny_onnx(folder / "tiny.onnx"), "calib": calibration_files(folder / "calib")}


CALIB_CASES = ["inf.npy", "nan.npy", "zero_d.npy", "strings.npy", "objects.npy", "wrong_shape.npy", "empty.npy",
               "complex.npy", "random.npz", "truncated.npy", "pickled.npz", "data.csv", "truncated image",
               "non-image .jpg", "folder without images"]


@pytest.mark.parametrize("case", CALIB_CASES)
def test_bad_calibration_refused_naming_the_file(work, tmp_path, case, monkeypatch):
    source, expect = work["calib"][case]
    import edgec.pipeline

    monkeypatch.setattr(edgec.pipeline, "_lowerings", lambda: pytest.fail("lowering started on bad data"))
    with pytest.raises(EdgecError) as info:
        edgec.compile(str(work["model"]), target="x86_64-int8", out_dir=tmp_path / "o", calibration=str(source))
    message = str(info.value)
    assert expect in message and "\n" not in message
    assert case in ("truncated image", "non-image .jpg", "folder without images") or \
        f"cannot use {source} as calibration data" in message
    assert not (tmp_path / "o").exists() or snapshot(tmp_path / "o") == {}


@pytest.mark.parametrize("source", ["array", "iterable"])
def test_nonfinite_arrays_from_the_api(work, tmp_path, source):
    data = np.ones((4, 3, 8, 8), np.float32)
    data[1, 0, 0, 0] = np.nan
    calibration = data if source == "array" else [d[None] for d in data]
    with pytest.raises(EdgecError, match=r"cannot use the calibration (array|iterable) as calibration data: it holds 1 NaN"):
        edgec.compile(str(work["model"]), target="x86_64-int8", out_dir=tmp_path, calibration=calibration)


def test_nan_weight_named_on_integer_target(work, tmp_path):
    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    weight[0, 0, 0, 0] = np.nan
    model = tiny_onnx(tmp_path / "nanw.onnx", weight=weight)
    with pytest.raises(EdgecError, match=r"weight 'conv.weight' \[4, 3, 3, 3\] holds 1 NaN value; an integer target"):
        edgec.compile(str(model), target="x86_64-int8", out_dir=tmp_path / "o", calibration="random")


@pytest.mark.parametrize("kwargs,expect", [
    (dict(target="x86_64-fp32", calibration="random"), "--calib: target 'x86_64-fp32' is a float target"),
    (dict(target="x86_64-fp32", calib_limit=8), "--calib-limit: target 'x86_64-fp32' is a float target"),
    (dict(target="x86_64-int8", calibration="random", calib_percentile=150), "expected a percentile in (0, 100]"),
    (dict(target="x86_64-int8", calibration="random", calib_percentile=0), "expected a percentile in (0, 100]"),
    (dict(target="x86_64-int8", calibration="random", calib_limit=0), "--calib-limit (calib_limit) 0: expected an integer >= 1"),
    (dict(target="x86_64-int8", calibration="random", calib_method="bogus"), "--calib-method 'bogus': expected one of"),
    (dict(target="x86_64-int4", calibration="random", accuracy_budget=-1), "--accuracy-budget -1: expected a finite number >= 0"),
    (dict(samples=0), "--samples (samples) 0: expected an integer >= 1"),
    (dict(samples="4"), "--samples (samples) '4': expected an integer"),
    (dict(formats="tflite"), "formats 'tflite': expected a list"),
    (dict(formats=["onnx"]), "--format 'onnx': target 'x86_64-fp32' makes tflite, tvm"),
    (dict(target=None), "target None: expected a target name"),
    (dict(input_shapes=5), "input_shapes 5: expected a shape"),
    (dict(input_shapes="1,0,8,8"), "every dimension must be a positive integer"),
    (dict(io="int16"), "--io 'int16'"),
])
def test_bad_api_arguments(work, tmp_path, kwargs, expect):
    args = dict(target="x86_64-fp32", out_dir=tmp_path / "o") | kwargs
    with pytest.raises(EdgecError) as info:
        edgec.compile(str(work["model"]), **args)
    assert expect in str(info.value)
    assert not (tmp_path / "o").exists()


def test_input_shapes_string_is_the_cli_syntax(work, tmp_path):
    art = edgec.compile(str(work["model"]), target="x86_64-fp32", out_dir=tmp_path, formats=["tflite"],
                        input_shapes="1,3,8,8", samples=1)
    assert art.report["artifacts"][0]["format"] == "tflite"


@pytest.mark.parametrize("kind,expect", [
    ("file", "it is a file, not a folder"),
    ("model", "it is the model file itself"),
    ("under a file", "is a file, not a folder"),
    ("unwritable", "creating a file in"),
    ("name ../x", "--name '../x': the name must be a plain file name"),
    ("name a/b", "--name 'a/b'"),
    ("name .hidden", "--name '.hidden'"),
])
def test_unusable_output_refused_before_import(work, tmp_path, kind, expect, monkeypatch):
    import edgec.api

    monkeypatch.setattr(edgec.api, "load_model", lambda *a, **k: pytest.fail("import started"))
    (tmp_path / "afile").write_text("keep me")
    out, name = tmp_path / "o", None
    if kind == "file":
        out = tmp_path / "afile"
    elif kind == "model":
        out = work["model"]
    elif kind == "under a file":
        out = tmp_path / "afile" / "sub"
    elif kind == "unwritable":
        out = unwritable_folder()
    else:
        name = kind.split(" ", 1)[1]
    with pytest.raises(EdgecError) as info:
        edgec.compile(str(work["model"]), target="x86_64-fp32", out_dir=out, name=name)
    assert expect in str(info.value) and ("cannot write to" in str(info.value) or "--name" in str(info.value))
    assert (tmp_path / "afile").read_text() == "keep me"
    assert not (tmp_path / "o").exists()


def test_cli_bad_calibration_one_line_nothing_written(work, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "tiny.x86_64-int8.tflite").write_bytes(b"an earlier artifact")
    before = snapshot(out)
    source, _ = work["calib"]["inf.npy"]
    proc = run("compile", work["model"], "-t", "x86_64-int8", "--calib", source, "-o", out)
    assert_clean_failure(proc, f"cannot use {source} as calibration data", "infinite", code=2, out=out, before=before)
