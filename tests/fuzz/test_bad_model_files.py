"""Broken, random and crafted model files and artifacts: one clear error, never a traceback or a crash."""

import os

import numpy as np
import onnx
import pytest
import torch

from edgec.errors import EdgecError, InputShapeError, ModelLoadError
from edgec.frontends import load_model
from edgec.inspect_artifact import inspect_artifact
from fuzz.crafted import Payload, TinyNet, payload_pickle, save_exported
from fuzz.files import TFLITE_DAMAGE, tiny_onnx, tiny_tflite


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    ts = folder / "ts.pt"
    torch.jit.save(torch.jit.trace(TinyNet().eval(), (torch.randn(1, 3, 8, 8),)), str(ts))
    return {"onnx": tiny_onnx(folder / "m.onnx"), "pt2": save_exported(folder / "m.pt2"), "pt": ts,
            "tflite": tiny_tflite(folder / "m.tflite")}


def _damaged(src, dst, how):
    data = src.read_bytes()
    dst.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "random": os.urandom(len(data)),
                     "header only": data[:64], "flipped": bytes(b ^ 0xFF for b in data)}[how])
    return dst


@pytest.mark.parametrize("kind", ["onnx", "pt2", "pt"])
@pytest.mark.parametrize("how", ["empty", "truncated", "random", "header only", "flipped"])
def test_damaged_model_file(good, tmp_path, kind, how):
    bad = _damaged(good[kind], tmp_path / f"bad.{kind}", how)
    with pytest.raises(ModelLoadError) as info:
        load_model(bad, input_shapes=[1, 3, 8, 8])
    assert str(bad) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("make,expect", [
    (lambda p: p / "missing.onnx", "no such file"),
    (lambda p: (p / "adir.onnx").mkdir() or p / "adir.onnx", "is a directory"),
    (lambda p: (p / "m.h5").write_bytes(b"\x89HDF") and p / "m.h5", "unknown model file type '.h5'"),
])
def test_model_path_problems(tmp_path, make, expect):
    with pytest.raises(ModelLoadError, match=expect):
        load_model(make(tmp_path))


@pytest.mark.parametrize("layout", ["torch.save", "legacy pickle"])
def test_pickle_payload_in_pt_never_runs(tmp_path, layout):
    marker, path = tmp_path / "marker", tmp_path / "evil.pt"
    if layout == "torch.save":
        torch.save(Payload(marker), str(path))
    else:
        path.write_bytes(payload_pickle(marker))
    with pytest.raises(ModelLoadError) as info:
        load_model(path, input_shapes=[1, 3, 8, 8])
    assert "--trust-pickle" in str(info.value) or "cannot read" in str(info.value)
    assert not marker.exists()


def test_onnx_external_data_missing_or_outside(good, tmp_path):
    model = onnx.load(str(good["onnx"]))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    assert load_model(tmp_path / "ext.onnx").model.graph.initializers["conv.weight"] is not None
    for location, expect in [("missing.data", "conv.weight"), ("../outside.data", "points outside"),
                             ("/etc/hostname", "absolute path")]:
        proto = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False)
        for entry in proto.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        onnx.save(proto, str(tmp_path / "moved.onnx"))
        with pytest.raises(ModelLoadError, match="cannot load its external data") as info:
            load_model(tmp_path / "moved.onnx")
        assert expect in str(info.value) and "tensor name: conv.weight" in str(info.value)


def test_onnx_zero_sized_input(tmp_path):
    model = tiny_onnx(tmp_path / "zero.onnx", input_shape=(1, 0, 8, 8))
    with pytest.raises(InputShapeError, match=r"input 'x' has a 0-sized dimension \[1, 0, 8, 8\]"):
        load_model(model)


@pytest.mark.parametrize("shape,expect", [
    ([1, 5, 8, 8], "input 'x' [1, 5, 8, 8]: Given groups=1, weight of size [4, 3, 3, 3], expected input[1, 5, 8, 8] "
                   "to have 3 channels"),
    ([1, 3], "input 'x' [1, 3]"),
])
def test_torchscript_wrong_shape_names_input(good, shape, expect):
    with pytest.raises(ModelLoadError) as info:
        load_model(good["pt"], input_shapes=shape)
    assert expect in str(info.value) and "--input-shape" in str(info.value)


@pytest.mark.parametrize("damage", sorted(TFLITE_DAMAGE))
def test_crafted_tflite_is_malformed(tmp_path, damage):
    mutate, expect = TFLITE_DAMAGE[damage]
    path = tiny_tflite(tmp_path / "crafted.tflite", mutate)
    with pytest.raises(ModelLoadError) as info:
        inspect_artifact(path)
    assert "malformed TFLite file" in str(info.value) and expect in str(info.value)


@pytest.mark.parametrize("how", ["truncated", "random", "header only"])
def test_damaged_tflite(good, tmp_path, how):
    with pytest.raises(ModelLoadError, match="TFLite"):
        inspect_artifact(_damaged(good["tflite"], tmp_path / "bad.tflite", how))


def test_good_tflite_inspects_and_runs(good):
    from edgec.runtimes.litert import LiteRTRuntime

    assert inspect_artifact(good["tflite"])["ops"] == {"ADD": 1}
    a, b = np.ones((1, 4), np.float32), np.full((1, 4), 2, np.float32)
    np.testing.assert_array_equal(LiteRTRuntime(good["tflite"]).run([a, b])[0], a + b)


def test_truncated_elf_is_corrupt_before_dlopen(tmp_path):
    from edgec.runtimes.tvmrt import elf_damage

    lib = next(p for p in ("/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6",
                           "/usr/lib/aarch64-linux-gnu/libm.so.6") if os.path.exists(p))
    data = open(lib, "rb").read()
    assert elf_damage(lib) is None
    for size in (40, 100, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.so").write_bytes(data[:size])
        assert elf_damage(tmp_path / "cut.so") is not None


@pytest.mark.parametrize("bad,expect", [(["1,x"], "expected integers"), (["0,3"], "positive integer"),
                                        (["x=1,3", "x=1,4"], "given twice"), (["1,3", "y=1,2"], "name every input")])
def test_input_shape_syntax_errors(bad, expect):
    from edgec.frontends.shapes import parse_input_shapes

    with pytest.raises(InputShapeError, match=expect):
        parse_input_shapes(bad)


def test_api_refuses_unknown_source_types():
    with pytest.raises(EdgecError, match="cannot compile a int"):
        load_model(42)
