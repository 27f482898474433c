"""MetaSchedule tuning into a database folder, and compiles that reuse it.

One tuning run (a tiny conv net, 4 trials) is shared by the tests that read its database;
they are marked slow: MetaSchedule's start (tensor intrinsics, a runner process, the cost
model) costs about a minute of CPU whatever the model. The argument and no-board tests fail
before any tuning starts and run by default.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import edgec
from edgec.errors import EdgecError
from edgec.ir import to_proto
from edgec.lower.tvm.int8_dot import CONV_NAME
from edgec.runtimes.cpu_features import missing_flags
from edgec.targets import get_target
from tests.helpers import build_model, random_weight

CONV = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])


def _conv_relu_net(path: Path, second_conv_channels: int | None = None) -> Path:
    """x[1,4,8,8] -> conv 4->8 3x3 + relu [-> conv 8->N 1x1]: the first conv is the shared task."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], **CONV), helper.make_node("Relu", ["c1"], ["y1"])]
    inits = {"w1": random_weight(8, 4, 3, 3, seed=1), "b1": random_weight(8, seed=2)}
    out, shape = "y1", [1, 8, 8, 8]
    if second_conv_channels:
        nodes.append(helper.make_node("Conv", ["y1", "w2"], ["y2"], kernel_shape=[1, 1]))
        inits["w2"] = random_weight(second_conv_channels, 8, 1, 1, seed=3)
        out, shape = "y2", [1, second_conv_channels, 8, 8]
    model = build_model(nodes, {"x": [1, 4, 8, 8]}, {out: shape}, inits)
    onnx.save(to_proto(model), path)
    return path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuning")
    model = _conv_relu_net(root / "first.onnx")
    db = root / "db"
    lines: list[str] = []
    summary = edgec.tune(str(model), target="x86_64-fp32", trials=4, db=db, log=lines.append)
    return root, db, summary, lines


@pytest.mark.slow
def test_tuning_writes_a_database_and_reports_progress(tuned):
    _, db, summary, lines = tuned
    assert summary["tasks"] >= 1 and summary["tuned"] == summary["tasks"]
    records = (db / "database_tuning_record.json").read_text().splitlines()
    assert len(records) >= summary["tasks"]
    assert all(json.loads(line)[1][1] for line in records[:1])  # a record carries measured run seconds
    assert any("task 1/" in line and "best" in line and " us" in line for line in lines)
    assert all(r["best_seconds"] and r["best_seconds"] > 0 for r in summary["rows"])


@pytest.mark.slow
def test_the_default_schedule_is_recorded_first_so_tuning_never_loses_to_it(tuned):
    _, _, summary, lines = tuned
    assert summary["seeded_with_default"] == summary["tasks"]
    assert any("measuring the default schedule" in line for line in lines)
    for row in summary["rows"]:
        # best: the database's top record (ranked by mean run time, shown as its median), so
        # a few percent of slack against the default record's median.
        assert 0 < row["best_seconds"] <= 1.1 * row["default_seconds"]


@pytest.mark.slow
@pytest.mark.skipif(bool(missing_flags(get_target("x86_64-int8-vnni").tvm_target)), reason="no AVX-512 VNNI here")
def test_int8_kernels_on_dot_product_instructions_are_left_out_of_tuning(tmp_path):
    model = _conv_relu_net(tmp_path / "m.onnx")
    summary = edgec.tune(str(model), target="x86_64-int8-vnni", trials=4, calibration="random", db=tmp_path / "db",
                         log=lambda _: None)
    assert summary["dot_product_kernels"] >= 1  # the dense convs keep vpdpbusd
    assert all(CONV_NAME not in row["task"] for row in summary["rows"])


@pytest.mark.slow
def test_compile_with_the_database_reuses_every_task_and_matches_onnxruntime(tuned):
    root, db, summary, _ = tuned
    art = edgec.compile(str(root / "first.onnx"), target="x86_64-fp32", out_dir=root / "out1", formats=["tvm"],
                        tuning_db=db)
    tuning = art.report["artifacts"][0]["lowering"]["tuning"]
    assert tuning["tasks"] == summary["tasks"] and tuning["untuned"] == 0
    assert tuning["tuned_time_share"] == pytest.approx(1.0)
    figs = art.report["verification"]["artifacts"]["tvm"]["vs_float"]  # vs onnxruntime on the float graph
    assert figs["max_rel_error"] < 1e-4


@pytest.mark.slow
def test_a_second_model_with_the_same_conv_reuses_its_task(tuned):
    root, db, _, _ = tuned
    second = _conv_relu_net(root / "second.onnx", second_conv_channels=6)
    art = edgec.compile(str(second), target="x86_64-fp32", out_dir=root / "out2", formats=["tvm"], tuning_db=db)
    tuning = art.report["artifacts"][0]["lowering"]["tuning"]
    assert tuning["tuned"] >= 1 and tuning["untuned"] >= 1  # the 3x3 conv+relu reused, the 1x1 conv not
    # Untuned kernels with FLOPs get an estimate; the layout transposes (no FLOPs) none.
    untuned = [k for k in tuning["kernels"] if not k["tuned"]]
    assert any(k["flops"] > 0 for k in untuned)
    assert all(k["est_seconds"] is not None and 0 < k["time_share"] < 1 for k in untuned if k["flops"] > 0)
    assert all(k["est_seconds"] is None for k in untuned if k["flops"] == 0)
    assert art.report["verification"]["artifacts"]["tvm"]["vs_float"]["max_rel_error"] < 1e-4
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    assert art.run(x)[0].shape == (1, 6, 8, 8)


@pytest.mark.slow
def test_a_time_budget_stops_after_the_batch_that_spends_it_and_keeps_its_records(tmp_path):
    model = _conv_relu_net(tmp_path / "m.onnx", second_conv_channels=6)
    lines: list[str] = []
    summary = edgec.tune(str(model), target="x86_64-fp32", trials=1000, minutes=0.001, db=tmp_path / "db",
                         log=lines.append)
    assert summary["stopped_by"] == "time budget" and summary["trials"] < 1000
    assert any("time budget spent" in line for line in lines)
    assert summary["tuned"] >= 1 and (tmp_path / "db" / "database_tuning_record.json").read_text().strip()


def test_zero_trials_is_a_clear_error(tmp_path):
    with pytest.raises(EdgecError, match="--trials 0: tuning needs at least 1 trial"):
        edgec.tune(str(tmp_path / "missing.onnx"), target="x86_64-fp32", trials=0, db=tmp_path / "db")


def test_a_database_path_that_is_a_file_is_a_clear_error(tmp_path):
    file = tmp_path / "db.json"
    file.write_text("{}")
    with pytest.raises(EdgecError, match="is a file; a tuning database is a folder"):
        edgec.tune(str(tmp_path / "missing.onnx"), target="x86_64-fp32", trials=8, db=file)
    with pytest.raises(EdgecError, match="is a file; a tuning database is a folder"):
        edgec.compile(str(tmp_path / "missing.onnx"), target="x86_64-fp32", out_dir=tmp_path / "o", tuning_db=file)


def test_arm64_without_a_reachable_board_tunes_nothing(tmp_path):
    model = _conv_relu_net(tmp_path / "m.onnx")
    db = tmp_path / "db"
    # A devices file whose only arm64 board sits behind a tracker that is not running.
    devices = tmp_path / "devices.yaml"
    import yaml

    from edgec.targets import default_devices_path

    spec = yaml.safe_load(default_devices_path().read_text())
    for device in spec["devices"].values():
        if device["kind"] == "rpc":
            device["tracker"] = "127.0.0.1:9"  # the discard port: nothing answers there
    devices.write_text(yaml.safe_dump(spec))
    with pytest.raises(EdgecError, match="no arm64 board is reachable to tune 'arm64-fp32'.*nothing was tuned"):
        edgec.tune(str(model), target="arm64-fp32", trials=8, db=db, devices=devices)
    assert not (db / "database_tuning_record.json").exists()


def test_cli_tune_rejects_zero_trials(tmp_path, capsys):
    from edgec.cli import main

    assert main(["tune", str(tmp_path / "m.onnx"), "--target", "x86_64-fp32", "--trials", "0"]) != 0
    assert "--trials 0" in capsys.readouterr().err
