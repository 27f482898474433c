"""edgec.bench.stats: summaries and bootstrap intervals behave as statistics should."""

import numpy as np
import pytest

from edgec.bench.stats import median_ci, median_ratio, summarize


def test_summary_of_known_samples():
    s = summarize([float(v) for v in range(1, 101)])  # 1..100 ms
    assert s.n == 100
    assert s.median_ms == pytest.approx(50.5)
    assert s.p10_ms == pytest.approx(10.9)
    assert s.p90_ms == pytest.approx(90.1)
    assert s.min_ms == 1 and s.max_ms == 100
    assert s.cv == pytest.approx(np.std(np.arange(1, 101), ddof=1) / 50.5)
    lo, hi = s.median_ci_ms
    assert lo < 50.5 < hi


def test_median_interval_has_its_nominal_coverage():
    # A 95% interval should contain the true median in about 95% of repeated experiments.
    rng = np.random.default_rng(1)
    true_median = 10.0  # of 10 + exponential(1) shifted: median = 10 + ln 2
    hits = 0
    trials = 120
    for seed in range(trials):
        x = 10.0 + rng.exponential(1.0, 60) - np.log(2)
        lo, hi = median_ci(x, resamples=1000, seed=seed)
        hits += lo <= true_median <= hi
    assert 0.88 <= hits / trials <= 0.99


def test_median_interval_shrinks_with_more_samples():
    rng = np.random.default_rng(2)
    widths = [np.subtract(*median_ci(10 + rng.standard_normal(n))[::-1]) for n in (30, 300, 3000)]
    assert widths[0] > widths[1] > widths[2] > 0


def test_interval_is_reproducible_for_the_same_samples():
    x = np.random.default_rng(2).gamma(2.0, 1.0, 50)
    assert median_ci(x) == median_ci(x)


def test_ratio_of_equal_distributions_includes_one():
    rng = np.random.default_rng(3)
    r = median_ratio(5 + rng.standard_normal(200) * 0.2, 5 + rng.standard_normal(200) * 0.2)
    assert r.ci[0] < 1.0 < r.ci[1]


def test_ratio_finds_a_twenty_percent_slowdown():
    rng = np.random.default_rng(4)
    old = 5 + rng.standard_normal(100) * 0.1
    new = 6 + rng.standard_normal(100) * 0.1
    r = median_ratio(new, old)
    assert r.ratio == pytest.approx(1.2, abs=0.02)
    assert 1.15 < r.ci[0] < 1.2 < r.ci[1] < 1.25


def test_pairing_removes_shared_drift():
    # The machine slows down and speeds up (a sine over the run); B is 3% slower than A at
    # every moment. Unpaired, the drift swamps 3%; paired (interleaved), it cancels.
    t = np.linspace(0, 6 * np.pi, 200)
    drift = 1 + 0.3 * np.sin(t)
    noise = np.random.default_rng(5).standard_normal((2, 200)) * 0.005
    a = 10 * drift + noise[0]
    b = 10.3 * drift + noise[1]
    paired = median_ratio(b, a, paired=True)
    unpaired = median_ratio(b, a, paired=False)
    assert paired.ci[0] > 1.0, "paired interval should exclude 1"
    assert (paired.ci[1] - paired.ci[0]) < (unpaired.ci[1] - unpaired.ci[0]) / 3


def test_rejects_empty_and_negative_samples():
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, -1.0])
