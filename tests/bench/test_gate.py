"""The regression gate on synthetic results: large-and-significant fails, anything else passes."""

import numpy as np
import pytest

from edgec.bench.gate import check_regression, comparability_warnings, parse_fraction
from edgec.bench.result import BenchResult
from edgec.errors import EdgecError


def result(samples, device="host", runtime="litert", threads=None, emulated=False):
    return BenchResult(
        artifact={"path": "m.tflite", "sha256": "0" * 64, "format": "tflite", "size_bytes": 1},
        device={"name": device, "kind": "host", "arch": "x86_64", "emulated": emulated,
                "machine": {"cpu": "test cpu"}},
        runtime={"name": runtime, "threads": threads},
        samples_ms=list(map(float, samples)), warmup=0, covers="test")


def noisy(median, spread, n=100, seed=0):
    return median + np.random.default_rng(seed).standard_normal(n) * spread


@pytest.mark.parametrize("text,value", [("5%", 0.05), ("0.05", 0.05), ("12.5%", 0.125), (" 0% ", 0.0)])
def test_parse_fraction(text, value):
    assert parse_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["five", "-5%", "5%%", ""])
def test_parse_fraction_rejects_nonsense(text):
    with pytest.raises(EdgecError, match="--max-regression"):
        parse_fraction(text)


def test_same_distribution_passes():
    v = check_regression(result(noisy(10, 0.3, seed=1)), result(noisy(10, 0.3, seed=2)), 0.05)
    assert not v.regressed
    assert v.message().startswith("pass")


def test_large_significant_slowdown_fails_and_says_so():
    v = check_regression(result(noisy(14, 0.3, seed=1)), result(noisy(10, 0.3, seed=2)), 0.05)
    assert v.regressed
    assert v.ratio.ci[0] > 1.05
    msg = v.message()
    assert msg.startswith("REGRESSION") and "1.4" in msg and "interval" in msg


def test_large_but_noisy_slowdown_is_not_enough():
    # Median 8% slower, but with 6 samples of 30% spread the interval reaches below +5%.
    current = result(noisy(10.8, 3.0, n=6, seed=3))
    baseline = result(noisy(10.0, 3.0, n=6, seed=4))
    v = check_regression(current, baseline, 0.05)
    assert v.ratio.ci[0] <= 1.05
    assert not v.regressed


def test_small_significant_slowdown_within_the_limit_passes():
    v = check_regression(result(noisy(10.3, 0.05, seed=5)), result(noisy(10.0, 0.05, seed=6)), 0.05)
    assert v.ratio.ci[0] > 1.0  # really slower...
    assert not v.regressed      # ...but by less than 5%


def test_warns_when_results_are_not_comparable():
    warnings = comparability_warnings(result([1, 2], device="rk3588", threads=4, emulated=True),
                                      result([1, 2], device="host", threads=1))
    text = " ".join(warnings)
    assert "device differs" in text and "threads differs" in text and "emulated" in text
    assert comparability_warnings(result([1, 2]), result([1, 2])) == []
