"""edgec bench on the host with real artifacts: statistics, JSON, the gate, --vs, plots, CLI."""

import json

import numpy as np
import pytest

from edgec.bench import BenchResult, benchmark, benchmark_vs
from edgec.bench.probe import probe_input, probe_reference
from edgec.bench.result import SCHEMA, SCHEMA_VERSION
from edgec.cli import main
from edgec.errors import EdgecError

RUNS = 60


@pytest.mark.parametrize("fixture,runtime", [("small_tflite", "litert"), ("small_tvm", "tvm"),
                                             ("small_onnx", "onnxruntime")])
def test_host_statistics_on_each_runtime(request, fixture, runtime):
    path = request.getfixturevalue(fixture)
    res = benchmark(path, device="host", runs=RUNS, warmup=5, threads=1)
    s = res.stats
    assert res.runtime["name"] == runtime
    assert len(res.samples_ms) == RUNS and res.warmup == 5
    assert all(v > 0 for v in res.samples_ms)
    assert s.p10_ms <= s.median_ms <= s.p90_ms
    assert s.median_ci_ms[0] <= s.median_ms <= s.median_ci_ms[1]
    assert s.cv >= 0
    assert res.runtime["threads"] == 1
    assert res.device == {**res.device, "name": "host", "kind": "host", "emulated": False}
    assert "excludes load" in res.covers


def test_json_schema_round_trip(small_tflite, tmp_path):
    res = benchmark(small_tflite, runs=10, warmup=1)
    path = res.save(tmp_path / "b.json")
    doc = json.loads(path.read_text())
    assert (doc["schema"], doc["version"]) == (SCHEMA, SCHEMA_VERSION)
    assert doc["artifact"]["sha256"] == __import__("hashlib").sha256(small_tflite.read_bytes()).hexdigest()
    assert doc["artifact"]["format"] == "tflite"
    assert len(doc["timing"]["samples_ms"]) == doc["timing"]["runs"] == 10
    assert doc["timing"]["covers"] and doc["timing"]["unit"] == "ms"
    assert {"python", "numpy", "ai-edge-litert"} <= set(doc["versions"])
    assert {"median_ms", "p10_ms", "p90_ms", "cv", "median_ci_ms"} <= set(doc["stats"])
    assert doc["device"]["machine"]["logical_cpus"] >= 1
    again = BenchResult.load(path)
    assert again.samples_ms == res.samples_ms
    assert again.stats == res.stats


def test_loading_something_else_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(EdgecError, match="not an edgec benchmark result"):
        BenchResult.load(bad)


def test_cpu_pinning_is_applied_and_reported(small_tflite):
    res = benchmark(small_tflite, runs=5, warmup=1, cpus="0")
    assert res.runtime["cpu_affinity"] == "0"
    with pytest.raises(EdgecError, match="not available"):
        benchmark(small_tflite, runs=5, cpus="4096")


def test_given_inputs_are_used(small_tflite):
    # The timing run's outputs are checked elsewhere; here: inputs= reaches the runtime.
    x = probe_input(32, "NHWC")
    res = benchmark(small_tflite, runs=3, warmup=0, inputs=[x])
    assert len(res.samples_ms) == 3
    with pytest.raises(EdgecError, match="shape"):
        benchmark(small_tflite, runs=3, inputs=[np.zeros((1, 2, 3, 4), np.float32)])


def test_vs_interleaved_finds_the_larger_input_slower(small_tflite, large_tflite):
    vs = benchmark_vs(small_tflite, large_tflite, runs=40, warmup=3)
    assert vs.ratio.paired
    assert vs.ratio.ci[0] > 3.0, vs.ratio  # 9x the work; allow a lot for caches and threads
    assert vs.a.artifact["path"].endswith("probe32.tflite")
    assert "interleaved" in vs.a.covers
    doc = vs.to_json()
    assert doc["ratio_b_over_a"]["ratio"] == vs.ratio.ratio


def test_vs_of_an_artifact_with_itself_is_not_a_difference(small_tflite):
    vs = benchmark_vs(small_tflite, small_tflite, runs=60, warmup=5)
    assert vs.ratio.ci[0] < 1.1 and vs.ratio.ci[1] > 0.9


def test_gate_cli_passes_unchanged_and_fails_slower(small_tflite, large_tflite, tmp_path, capsys):
    baseline = tmp_path / "main.json"
    assert main(["bench", str(small_tflite), "--runs", "60", "--json", str(baseline)]) == 0
    capsys.readouterr()

    # Unchanged artifact: must pass. The limit is wide because the two runs are separate in
    # time on a shared 2-core CI machine (another test worker may be busy in between); the
    # deliberately slower artifact below is ~9x, far past any limit.
    assert main(["bench", str(small_tflite), "--runs", "60", "--baseline", str(baseline),
                 "--max-regression", "25%"]) == 0
    out = capsys.readouterr().out
    assert "pass" in out and "ratio" in out

    code = main(["bench", str(large_tflite), "--runs", "60", "--baseline", str(baseline),
                 "--max-regression", "5%"])
    captured = capsys.readouterr()
    assert code == 4
    assert "REGRESSION" in captured.out
    assert "interval" in captured.out


def test_vs_cli_gate_and_plot(small_tflite, large_tflite, tmp_path, capsys):
    plot = tmp_path / "vs.png"
    code = main(["bench", str(small_tflite), "--vs", str(large_tflite), "--runs", "30",
                 "--max-regression", "10%", "--plot", str(plot), "--json", str(tmp_path / "vs.json")])
    out = capsys.readouterr().out
    assert code == 4, out
    assert "ratio B/A" in out and "B slower" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "vs.json").read_text())["schema"] == "edgec-bench-vs"


def test_distribution_plot(small_tflite, large_tflite, tmp_path):
    from edgec.bench.plots import plot_distribution

    results = [benchmark(p, runs=20, warmup=2) for p in (small_tflite, large_tflite)]
    png = plot_distribution(results, tmp_path / "d.png")
    assert png.stat().st_size > 10_000


def test_runs_must_allow_statistics(small_tflite):
    with pytest.raises(EdgecError, match="at least 2"):
        benchmark(small_tflite, runs=1)


def test_probe_artifacts_compute_the_reference(small_tflite, small_tvm, small_onnx):
    from edgec.artifact import open_runtime

    x = probe_input(32)
    ref = probe_reference(x)
    np.testing.assert_allclose(open_runtime(small_onnx).run([x])[0], ref, atol=1e-4)
    np.testing.assert_allclose(open_runtime(small_tvm).run([x])[0], ref, atol=1e-4)
    y = open_runtime(small_tflite).run([probe_input(32, "NHWC")])[0]
    np.testing.assert_allclose(y, ref.transpose(0, 2, 3, 1), atol=1e-4)
