import numpy as np
import pytest

from edgec.quantization.observers import TensorObserver
from edgec.quantization.scheme import (
    activation_qparams,
    dequantize,
    quantize,
    quantize_bias,
    weight_qparams,
)


def test_weight_qparams_symmetric_narrow_per_channel():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    w[5] = 0.0  # a pruned channel still gets a usable scale
    p = weight_qparams(w, axis=0, bits=8)
    q = quantize(w, p)
    assert p.scale.shape == (8,) and np.all(p.zero_point == 0)
    assert q.min() >= -127 and q.max() <= 127
    for c in range(8):
        if c != 5:
            assert np.abs(q[c]).max() == 127  # each channel uses its full range
    np.testing.assert_array_equal(q[5], 0)
    err = np.abs(dequantize(q, p) - w)
    assert np.all(err <= p.scale.reshape(-1, 1, 1, 1) / 2 + 1e-7)
    p4 = weight_qparams(w, axis=0, bits=4)
    q4 = quantize(w, p4)
    assert q4.min() >= -7 and q4.max() <= 7


def test_activation_qparams_hold_zero_exactly():
    for lo, hi in [(-1.3, 4.2), (0.5, 3.0), (-2.0, -0.1)]:
        p = activation_qparams(lo, hi)
        zero = quantize(np.zeros(1, np.float32), p)
        assert dequantize(zero, p)[0] == 0.0  # zero padding must be exact
        x = np.linspace(min(lo, 0), max(hi, 0), 101).astype(np.float32)
        assert np.abs(dequantize(quantize(x, p), p) - x).max() <= float(p.scale) * 0.5 + 1e-6


def test_bias_scale_is_input_times_weight_scale():
    b = np.array([0.5, -1.0, 2.0], np.float32)
    ws = np.array([0.01, 0.02, 0.03], np.float32)
    q, s = quantize_bias(b, 0.1, ws)
    np.testing.assert_allclose(s, 0.1 * ws, rtol=1e-6)
    np.testing.assert_allclose(q * s, b, atol=s.max())
    assert q.dtype == np.int32


def _observe(x, method):
    obs = TensorObserver(abs_histogram=method == "entropy")
    obs.update_minmax(x)
    if method != "minmax":
        obs.update_histogram(x)
    return obs.range(method)


def test_range_methods_clip_outliers_but_minmax_does_not():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100_000).astype(np.float32)
    x[:3] = [40.0, -35.0, 38.0]  # a few outliers
    lo, hi = _observe(x, "minmax")
    assert (lo, hi) == (-35.0, 40.0)
    for method in ("percentile", "entropy"):
        lo, hi = _observe(x, method)
        assert -10 < lo < -2 and 2 < hi < 10, (method, lo, hi)
    # MSE weighs the outliers' clipping error against the rounding error of everything else.
    lo, hi = _observe(x, "mse")
    assert -35.0 <= lo < 0 < hi <= 40.0


def test_mse_range_beats_minmax_on_heavy_tails():
    rng = np.random.default_rng(1)
    x = rng.laplace(size=200_000).astype(np.float32)

    def mse(rng_):
        p = activation_qparams(*rng_)
        return float(np.mean((dequantize(quantize(x, p), p) - x) ** 2))

    assert mse(_observe(x, "mse")) < mse(_observe(x, "minmax"))


def test_unknown_method():
    from edgec.errors import EdgecError

    obs = TensorObserver()
    obs.update_minmax(np.ones(3))
    obs.update_histogram(np.ones(3))
    with pytest.raises(EdgecError, match="unknown calibration method 'bogus'"):
        obs.range("bogus")


def _kl_reference(h, i, levels):
    """TensorRT's KL for one candidate, written as the loops of its description."""
    p = h[:i].astype(np.float64).copy()
    p[-1] += h[i:].sum()
    q = np.zeros(i)
    for c in range(levels):
        idx = np.arange(c * i // levels, (c + 1) * i // levels)  # chunk c of i/levels bins
        nz = idx[h[idx] > 0]
        if len(nz):
            q[nz] = h[idx].sum() / len(nz)
    p, q = p / p.sum(), q / q.sum()
    mask = p > 0
    if np.any(q[mask] == 0):
        return np.inf
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def test_entropy_kl_matches_the_loop_definition():
    from edgec.quantization.observers import _kl_per_candidate

    rng = np.random.default_rng(5)
    h = np.histogram(np.abs(rng.laplace(size=50_000)), bins=2048)[0].astype(np.float64)
    candidates = np.array([128, 300, 777, 1500, 2048])
    for levels in (128, 200, 256):
        got = _kl_per_candidate(h, candidates, np.full(len(candidates), levels),
                                h.sum() - np.cumsum(h)[candidates - 1], h.sum())
        want = [_kl_reference(h, i, levels) for i in candidates]
        np.testing.assert_allclose(got, want, rtol=1e-9)


def test_entropy_does_not_clip_the_bulk_of_a_spiky_tensor():
    """Discrete activations (MNIST's background gives each channel one exact value): most of the
    mass sits in a few spikes, where the KL criterion alone clips far into the bulk."""
    rng = np.random.default_rng(6)
    spikes = rng.choice(np.array([0.1, 0.35, 0.6, 0.9], np.float32), size=600_000)
    strokes = np.abs(rng.standard_normal(400_000)).astype(np.float32) * 1.5
    x = np.concatenate([spikes, strokes])
    lo, hi = _observe(x, "entropy")
    assert np.mean(x > hi) <= 0.001 + 1e-6, hi
    assert hi < x.max()  # still clips the far tail
