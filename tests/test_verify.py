import math

import numpy as np
import pytest

from edgec.targets import Tolerance
from edgec.verify import compare_outputs, sqnr_db, tolerance_failures


def test_sqnr_matches_definition():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000)
    noise = 0.01 * rng.standard_normal(1000)
    expected = 10 * np.log10(np.sum(ref**2) / np.sum(noise**2))
    assert abs(sqnr_db(ref + noise, ref) - expected) < 1e-9
    assert sqnr_db(ref, ref) == math.inf


def test_compare_outputs_figures_and_top1():
    rng = np.random.default_rng(1)
    ref = [[rng.standard_normal((1, 10)).astype(np.float32)] for _ in range(4)]
    act = [[r[0].copy()] for r in ref]
    act[2][0][0, np.argmax(ref[2][0])] -= 100.0  # flip the winner of one sample
    figs = compare_outputs(act, ref, ["logits"])
    assert figs["top1_agreement"] == 0.75
    assert abs(figs["max_abs_error"] - 100.0) < 1e-4
    scale = max(np.abs(r[0]).max() for r in ref)
    assert abs(figs["max_rel_error"] - 100.0 / scale) < 1e-4
    assert tolerance_failures(figs, Tolerance(max_rel_error=1e-4))
    same = compare_outputs(ref, ref, ["logits"])
    assert tolerance_failures(same, Tolerance(max_rel_error=1e-4, min_sqnr_db=60)) == []


def test_nan_and_shape_mismatch_fail():
    ref = [[np.ones((1, 4), np.float32)]]
    figs = compare_outputs([[np.full((1, 4), np.nan, np.float32)]], ref, ["y"])
    assert any("NaN" in p for p in tolerance_failures(figs, Tolerance(1e-4)))
    figs = compare_outputs([[np.ones((1, 5), np.float32)]], ref, ["y"])
    assert any("shape" in p for p in tolerance_failures(figs, Tolerance(1e-4)))


def test_accuracy_budget_holds_top1_and_rms_error_only_when_enforced():
    from edgec.verify import accuracy_failures, accuracy_summary

    rng = np.random.default_rng(3)
    ref = [[rng.standard_normal((1, 10))] for _ in range(60)]
    # 9 of 60 samples change their top class: a 15-point drop in top-1 agreement.
    actual = [[r[0].copy()] for r in ref]
    for s in actual[:9]:
        s[0][0, np.argsort(s[0][0])[-2]] += 10.0
    names = ["logits"]
    vs_float = compare_outputs(actual, ref, names)
    held = accuracy_summary(vs_float, budget=10.0, enforced=True)
    assert held["outputs"][0]["top1_agreement"] == pytest.approx(0.85)
    assert "15.0 points below float" in accuracy_failures(held)[0]
    assert accuracy_failures(accuracy_summary(vs_float, budget=20.0, enforced=True)) == []
    random_data = accuracy_summary(vs_float, budget=10.0, enforced=False)
    assert accuracy_failures(random_data) == [] and "random calibration" in random_data["why_not_enforced"]
    few = accuracy_summary(compare_outputs(actual[:4], ref[:4], names), budget=10.0, enforced=True)
    assert accuracy_failures(few) == [] and "only 4 verification samples" in few["why_not_enforced"]
    # Non-classifier output: relative RMS error in percent, 10^(-SQNR/20).
    feats = [[r[0].reshape(1, 10, 1)] for r in ref]
    noisy = [[f[0] * 1.05] for f in feats]
    summary = accuracy_summary(compare_outputs(noisy, feats, ["features"]), budget=4.0, enforced=True)
    assert summary["outputs"][0]["relative_rms_error_pct"] == pytest.approx(5.0, rel=1e-6)
    assert "relative RMS error vs float 5.00%" in accuracy_failures(summary)[0]


def test_a_denormal_reference_is_named_in_the_failure():
    # A flush-to-zero kernel (XNNPACK, TVM) returns 0 where the reference holds 1e-40: relative error 1.
    ref = np.array([[6e-40, -3e-40, 1e-41]], np.float32)
    figs = compare_outputs([[np.zeros_like(ref)]], [[ref]], ["y"])
    (problem,) = tolerance_failures(figs, Tolerance(max_rel_error=1e-4))
    assert "max relative error 1 > 0.0001" in problem and "float32 denormal" in problem
    normal = compare_outputs([[np.zeros(3, np.float32)]], [[np.ones(3, np.float32)]], ["y"])
    assert "denormal" not in tolerance_failures(normal, Tolerance(max_rel_error=1e-4))[0]
