"""Range estimation for activations: minmax, percentile, MSE-optimal and entropy (KL).

All but minmax work on a histogram, built in a second pass over the calibration set once the
first pass has found each tensor's min and max (so every batch lands in the same bins).
"""

from __future__ import annotations

import numpy as np

from edgec.errors import EdgecError
from edgec.quantization.scheme import activation_qparams

METHODS = ("minmax", "percentile", "mse", "entropy")
BINS = 2048


def needs_histogram(method: str) -> bool:
    return method != "minmax"


def channel_axis(rank: int) -> int | None:
    """Channels are axis 1 of NCHW tensors and the last axis otherwise (Gemm/MatMul inputs)."""
    if rank < 2:
        return None
    return 1 if rank == 4 else rank - 1


class TensorObserver:
    """Min/max of one tensor (overall and per channel) and its per-channel mean, then
    (optionally) its histogram over [min, max]."""

    def __init__(self):
        self.lo = np.inf
        self.hi = -np.inf
        self.hist: np.ndarray | None = None
        self.channel_lo: np.ndarray | None = None
        self.channel_hi: np.ndarray | None = None
        self._channel_sum: np.ndarray | None = None
        self._channel_count = 0
        self._channels_consistent = True

    def update_minmax(self, x: np.ndarray) -> None:
        """Observe a whole tensor (numpy reductions; `update_reduced` takes them precomputed)."""
        x = np.asarray(x)
        if not x.size:
            return
        axis = channel_axis(x.ndim)
        if axis is None:
            self.update_reduced(np.min(x), np.max(x))
            return
        channels = x.shape[axis]
        if axis == 1:
            rows = x.reshape(x.shape[0], channels, -1)  # reduce the contiguous spatial axis first
            lo, hi = rows.min(axis=2).min(axis=0), rows.max(axis=2).max(axis=0)
            total = rows.sum(axis=2, dtype=np.float64).sum(axis=0)
        else:
            rows = x.reshape(-1, channels)
            lo, hi, total = rows.min(axis=0), rows.max(axis=0), rows.sum(axis=0, dtype=np.float64)
        self.update_reduced(lo, hi, total, x.size // channels)

    def update_reduced(self, lo, hi, channel_sum: np.ndarray | None = None, count: int = 0) -> None:
        """Fold in one batch's reductions: `lo`/`hi` per channel ([C]) or overall (scalars), and
        optionally the per-channel sum over `count` elements per channel."""
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        if lo.size == 0:
            return
        self.lo = min(self.lo, float(lo.min()))
        self.hi = max(self.hi, float(hi.max()))
        if lo.ndim != 1 or not self._channels_consistent:
            return
        if self.channel_lo is not None and self.channel_lo.shape != lo.shape:
            # The channel count changed between batches (a dynamic shape): no per-channel figures.
            self._channels_consistent = False
            self.channel_lo = self.channel_hi = self._channel_sum = None
            return
        first = self.channel_lo is None
        self.channel_lo = lo if first else np.minimum(self.channel_lo, lo)
        self.channel_hi = hi if first else np.maximum(self.channel_hi, hi)
        if channel_sum is not None:
            channel_sum = np.asarray(channel_sum, np.float64)
            self._channel_sum = channel_sum if self._channel_sum is None else self._channel_sum + channel_sum
            self._channel_count += count

    def channel_mean(self) -> np.ndarray | None:
        """Mean per channel over everything observed: what bias correction needs (E[x])."""
        if self._channel_sum is None or not self._channel_count:
            return None
        return (self._channel_sum / self._channel_count).astype(np.float32)

    def channel_range(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-channel (min, max): lets statistics follow a per-channel rescaling exactly."""
        if self.channel_lo is None:
            return None
        return self.channel_lo.astype(np.float32), self.channel_hi.astype(np.float32)

    def update_histogram(self, x: np.ndarray) -> None:
        lo, hi = self._edges_range()
        counts, _ = np.histogram(x, bins=BINS, range=(lo, hi))
        self.hist = counts if self.hist is None else self.hist + counts

    def _edges_range(self) -> tuple[float, float]:
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        return (lo, hi) if hi > lo else (lo, lo + 1e-6)

    def range(self, method: str, percentile: float = 99.99) -> tuple[float, float]:
        if not np.isfinite(self.lo):
            return 0.0, 0.0
        if method == "minmax" or self.hist is None or self.hist.sum() == 0:
            return self.lo, self.hi
        lo, hi = self._edges_range()
        edges = np.linspace(lo, hi, BINS + 1)
        if method == "percentile":
            return _percentile_range(self.hist, edges, percentile)
        if method == "mse":
            return _mse_range(self.hist, edges)
        if method == "entropy":
            return _entropy_range(self.hist, edges)
        raise EdgecError(f"unknown calibration method '{method}'; expected one of {', '.join(METHODS)}")


def _percentile_range(hist: np.ndarray, edges: np.ndarray, pct: float) -> tuple[float, float]:
    cdf = np.cumsum(hist) / hist.sum()
    tail = (100.0 - pct) / 100.0
    lo = edges[np.searchsorted(cdf, tail, side="left")]
    hi = edges[min(np.searchsorted(cdf, 1.0 - tail, side="left") + 1, len(edges) - 1)]
    return float(min(lo, 0.0)), float(max(hi, 0.0))


def _quant_mse(hist: np.ndarray, centers: np.ndarray, lo: float, hi: float) -> float:
    p = activation_qparams(lo, hi)
    scale, zp = float(p.scale), int(p.zero_point)
    q = np.clip(np.rint(centers / scale) + zp, -128, 127)
    return float(np.sum(hist * ((q - zp) * scale - centers) ** 2))


def _mse_range(hist: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """Shrink both ends of the range together; keep the clip with the least quantization MSE."""
    centers = (edges[:-1] + edges[1:]) / 2
    lo0, hi0 = float(edges[0]), float(edges[-1])
    best = (np.inf, lo0, hi0)
    for alpha in np.linspace(0.2, 1.0, 81):
        err = _quant_mse(hist, centers, lo0 * alpha, hi0 * alpha)
        if err < best[0]:
            best = (err, lo0 * alpha, hi0 * alpha)
    return best[1], best[2]


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def _entropy_threshold(abs_hist: np.ndarray, levels: int) -> int:
    """TensorRT's calibration: the bin count whose int8 re-binning loses the least information."""
    n = len(abs_hist)
    best_i, best_kl = n, np.inf
    for i in range(levels, n + 1, max(1, n // 64)):
        ref = abs_hist[:i].astype(np.float64).copy()
        ref[-1] += abs_hist[i:].sum()  # outliers clipped into the last bin
        if ref.sum() == 0:
            continue
        chunks = np.array_split(np.arange(i), levels)
        cand = np.zeros(i)
        for idx in chunks:
            nonzero = abs_hist[idx] > 0
            if nonzero.any():
                cand[idx[nonzero]] = abs_hist[idx].sum() / nonzero.sum()
        p = ref / ref.sum()
        if cand.sum() == 0:
            continue
        q = cand / cand.sum()
        if np.any((p > 0) & (q == 0)):
            q = np.where(q == 0, 1e-12, q)
        kl = _kl(p, q)
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def _entropy_range(hist: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    lo, hi = float(edges[0]), float(edges[-1])
    absmax = max(-lo, hi)
    centers = (edges[:-1] + edges[1:]) / 2
    abs_hist, abs_edges = np.histogram(np.abs(centers), bins=BINS, range=(0, absmax), weights=hist)
    levels = 256 if lo >= 0 else 128  # one-sided tensors (after ReLU) get all 256 levels
    # Zero is exactly representable, so exact zeros (half of a ReLU output) cost nothing; left
    # in, their spike would be smeared over the first quantization bin and dominate the KL,
    # pushing the threshold far too low (1.8 sigma on a rectified normal, measured).
    abs_hist = abs_hist.copy()
    abs_hist[0] = 0
    threshold = abs_edges[_entropy_threshold(abs_hist, levels)]
    return max(lo, -threshold), min(hi, threshold)
