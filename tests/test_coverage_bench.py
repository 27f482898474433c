"""The coverage benchmark's machinery (benchmarks/coverage.py): it builds a timm and a transformers model
in subprocesses, compiles them with edgec and measures them against torch; a step that hangs is a failed
row naming its stage, not a dead benchmark. Skips when the optional `models` extra is not installed."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

needs_models = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("timm", "transformers")),
    reason="timm/transformers not installed (the 'models' extra; `make coverage` installs them)")


@needs_models
def test_builds_a_timm_and_a_transformers_model_and_compiles_them_for_fp32(tmp_path):
    from benchmarks import coverage

    rc = coverage.main(["--only", "lcnet_050,hf_distilbert", "--targets", "x86_64-fp32", "--formats", "tflite",
                        "--results", str(tmp_path / "results"), "--workdir", str(tmp_path / "work")])
    assert rc == 0
    rows = {r["model"]: r for r in json.loads((tmp_path / "results" / "coverage.json").read_text())}
    assert set(rows) == {"lcnet_050", "hf_distilbert"}
    for name, row in rows.items():
        assert row["status"] == "ok", (name, row.get("stage"), row.get("cause"))
        assert set(row["vs_torch"]) == {"tflite"}  # the artifact was run and compared with torch
        assert row["max_rel_error"] <= 1e-4 and row["sqnr_db"] > 60, row["vs_torch"]
    assert rows["hf_distilbert"]["inputs"][0] == {"shape": [1, 64], "dtype": "int64"}
    assert "2/2 ok (100%)" in (tmp_path / "results" / "coverage.md").read_text()


def test_a_step_past_its_timeout_is_a_failed_row_naming_the_stage(tmp_path):
    from benchmarks import coverage

    row = coverage.run_step(["build", "resnet50", str(tmp_path)], tmp_path / "resnet50.result.json",
                            tmp_path / "build.log", coverage.child_env("edgec"), timeout=0.5)
    assert row["status"] == "failed" and row["crashed"]
    assert row["cause"] == "timed out after 0 s" or row["cause"].startswith("timed out after")
    assert row["stage"] in ("start", "build")
    assert not (tmp_path / "resnet50.result.json").exists()


def test_failures_group_by_stage_and_named_ops():
    from benchmarks.coverage_support.report import cause_key

    a = {"stage": "lower", "ops": ["Erf", "Gather"], "cause": "2 node(s) cannot be lowered ..."}
    b = {"stage": "verify", "cause": "verification failed, no artifact written:\n  tflite vs torch: max_rel_error "
                                     "3.1e-03 > 1e-04 at 'node_17'"}
    c = {"stage": "verify", "cause": "verification failed, no artifact written:\n  tflite vs torch: max_rel_error "
                                     "9.9e-02 > 1e-04 at 'node_3'"}
    assert cause_key(a) == "lower: unsupported Erf, Gather"
    assert cause_key(b) == cause_key(c) != cause_key(a)


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


@needs_models
def test_sigterm_stops_the_steps_in_flight_and_writes_no_table(tmp_path):
    import signal
    import subprocess
    import time

    work, results = tmp_path / "work", tmp_path / "results"
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "coverage.py"), "--only", "resnet50",
                             "--targets", "x86_64-fp32", "--workdir", str(work), "--results", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (work / "resnet50" / "build.log").exists():  # the build step has started
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    assert _processes_mentioning(str(work))  # the step runs, in its own session
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted after 0 rows" in err
    assert not _processes_mentioning(str(work))
    assert not results.exists()


def test_a_partial_run_updates_its_rows_and_keeps_the_others(tmp_path):
    from benchmarks.coverage_support.report import write_results

    def row(model, target, status):
        return {"model": model, "target": target, "status": status, "stage": "lower", "cause": "x", "seconds": 1.0}

    write_results([row("resnet18", "x86_64-fp32", "failed"), row("dropped", "x86_64-fp32", "ok")], tmp_path,
                  {"resnet18", "hf_bert"})
    write_results([row("resnet18", "x86_64-fp32", "ok"), row("hf_bert", "x86_64-int8", "failed")], tmp_path,
                  {"resnet18", "hf_bert"})
    rows = {(r["model"], r["target"]): r["status"] for r in json.loads((tmp_path / "coverage.json").read_text())}
    assert rows == {("resnet18", "x86_64-fp32"): "ok", ("hf_bert", "x86_64-int8"): "failed"}
    md = (tmp_path / "coverage.md").read_text()
    assert "**x86_64-fp32**: 1/1 ok (100%)" in md and "**x86_64-int8**: 0/1 ok (0%)" in md
    assert "- lower: x (1): hf_bert" in md
