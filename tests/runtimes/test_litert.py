"""LiteRTRuntime: running, timing, load errors, and counting what XNNPACK delegated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgec.errors import InputShapeError, ModelLoadError
from edgec.lower.tflite.builder import TFLiteGraph
from edgec.runtimes.litert import LiteRTRuntime

SHAPE = (1, 4, 4, 3)


def _write_model(path: Path, with_cumsum: bool) -> Path:
    """x -> ADD 1 -> LOGISTIC -> [CUMSUM over the last axis] -> TANH.

    XNNPACK has no CUMSUM, so it must leave exactly that operator to the CPU kernels and
    split the rest into two delegated partitions.
    """
    g = TFLiteGraph()
    x = g.add_tensor("x", SHAPE)
    shifted = g.add_tensor("shifted", SHAPE)
    g.add_op("ADD", [x, g.add_const(np.ones((1, 1, 1, 3), np.float32), "one")], [shifted], schema.AddOptionsT())
    squashed = g.add_tensor("squashed", SHAPE)
    g.add_op("LOGISTIC", [shifted], [squashed])
    if with_cumsum:
        summed = g.add_tensor("summed", SHAPE)
        g.add_op("CUMSUM", [squashed, g.add_const(np.array(3, np.int32), "axis")], [summed], schema.CumsumOptionsT())
        squashed = summed
    y = g.add_tensor("y", SHAPE)
    g.add_op("TANH", [squashed], [y])
    g.inputs, g.outputs = [x], [y]
    path.write_bytes(g.serialize())
    return path


def _expected(x: np.ndarray, with_cumsum: bool) -> np.ndarray:
    s = 1 / (1 + np.exp(-(x + 1)))
    return np.tanh(np.cumsum(s, axis=3) if with_cumsum else s)


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


@pytest.mark.parametrize("xnnpack", [True, False])
def test_runs_and_matches_numpy(tmp_path, x, xnnpack):
    runtime = LiteRTRuntime(_write_model(tmp_path / "m.tflite", with_cumsum=True), xnnpack=xnnpack, num_threads=2)
    assert [(s.name, s.shape, s.dtype) for s in runtime.inputs] == [("x", SHAPE, np.dtype(np.float32))]
    assert [s.name for s in runtime.outputs] == ["y"]
    (y,) = runtime.run([x])
    np.testing.assert_allclose(y, _expected(x, True), rtol=1e-5, atol=1e-6)


def test_delegation_counts_what_xnnpack_took(tmp_path):
    full = LiteRTRuntime(_write_model(tmp_path / "full.tflite", with_cumsum=False)).delegation()
    assert full == {"nodes": 3, "delegated": 3, "fraction": 1.0, "delegate_kernels": 1, "not_delegated": []}

    split = LiteRTRuntime(_write_model(tmp_path / "split.tflite", with_cumsum=True)).delegation()
    assert split["nodes"] == 4
    assert split["not_delegated"] == ["CUMSUM"]
    assert split["delegated"] == 3
    assert split["fraction"] == pytest.approx(0.75)
    assert split["delegate_kernels"] == 2  # CUMSUM cuts the graph in two partitions


def test_delegation_is_zero_without_xnnpack(tmp_path):
    d = LiteRTRuntime(_write_model(tmp_path / "m.tflite", with_cumsum=False), xnnpack=False).delegation()
    assert d["delegated"] == 0 and d["delegate_kernels"] == 0
    assert d["not_delegated"] == ["ADD", "LOGISTIC", "TANH"]


def test_time_keeps_every_sample(tmp_path, x):
    runtime = LiteRTRuntime(_write_model(tmp_path / "m.tflite", with_cumsum=False))
    timing = runtime.time([x], warmup=2, repeat=7)
    assert len(timing.samples_ms) == 7 and all(s > 0 for s in timing.samples_ms)
    assert timing.runtime == "litert"
    assert timing.p10_ms <= timing.median_ms <= timing.p90_ms


def test_wrong_input_shape_is_an_input_error(tmp_path):
    runtime = LiteRTRuntime(_write_model(tmp_path / "m.tflite", with_cumsum=False))
    with pytest.raises(InputShapeError, match=r"'x' has shape \[1, 4, 4, 3\]"):
        runtime.run([np.zeros((1, 3, 4, 4), np.float32)])


def test_missing_file_is_a_load_error(tmp_path):
    path = tmp_path / "nope.tflite"
    with pytest.raises(ModelLoadError, match="nope.tflite"):
        LiteRTRuntime(path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_file_is_a_load_error_naming_it(tmp_path, damage):
    good = _write_model(tmp_path / "good.tflite", with_cumsum=False).read_bytes()
    data = {
        "truncated": good[: len(good) // 2],
        "garbage": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty": b"",
    }[damage]
    path = tmp_path / f"{damage}.tflite"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match=f"{damage}.tflite"):
        LiteRTRuntime(path)
