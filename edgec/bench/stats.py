"""Latency statistics: robust summaries and bootstrap confidence intervals.

Latency distributions are skewed (a floor set by the hardware, a long tail from interrupts,
frequency changes and other processes), so edgec summarises with the median and the
10th/90th percentiles rather than the mean, and gives the median a confidence interval by
the percentile bootstrap: resample the samples with replacement, take each resample's
median, and read the interval off those medians. The bootstrap assumes nothing about the
distribution's shape, which is why it is used for the regression gate too.

Resampling uses a fixed seed so that the same samples always give the same interval (a CI
gate must not flip between two runs of the check on identical data).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0


@dataclasses.dataclass(frozen=True)
class Summary:
    n: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    cv: float  # coefficient of variation: std / mean
    median_ci_ms: tuple[float, float]  # bootstrap interval of the median at CONFIDENCE

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["median_ci_ms"] = list(self.median_ci_ms)
        return d


@dataclasses.dataclass(frozen=True)
class Ratio:
    """median(new) / median(old) with its bootstrap interval: above 1 means slower."""

    ratio: float
    ci: tuple[float, float]
    paired: bool  # True when samples were taken interleaved and resampled as pairs

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "ci": list(self.ci), "paired": self.paired,
                "confidence": CONFIDENCE, "resamples": RESAMPLES}


def summarize(samples_ms: Sequence[float]) -> Summary:
    x = _as_samples(samples_ms)
    mean = float(x.mean())
    return Summary(
        n=int(x.size),
        median_ms=float(np.median(x)),
        p10_ms=float(np.percentile(x, 10)),
        p90_ms=float(np.percentile(x, 90)),
        mean_ms=mean,
        min_ms=float(x.min()),
        max_ms=float(x.max()),
        cv=float(x.std(ddof=1) / mean) if x.size > 1 and mean > 0 else 0.0,
        median_ci_ms=median_ci(x),
    )


def median_ci(samples_ms: Sequence[float], confidence: float = CONFIDENCE,
              resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median."""
    x = _as_samples(samples_ms)
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, x.size, (resamples, x.size))], axis=1)
    return _interval(medians, confidence)


def median_ratio(new_ms: Sequence[float], old_ms: Sequence[float], *, paired: bool = False,
                 confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED) -> Ratio:
    """median(new) / median(old) and its bootstrap interval.

    Unpaired (two separate runs, e.g. a stored baseline): each side is resampled on its own.
    Paired (interleaved A B A B): sample i of each side was taken back to back, so slow
    phases of the machine hit both; resampling whole pairs keeps that, and the interval is
    narrower than the unpaired one on a machine whose speed drifts.
    """
    new, old = _as_samples(new_ms), _as_samples(old_ms)
    rng = np.random.default_rng(seed)
    if paired:
        if new.size != old.size:
            raise ValueError(f"paired samples need equal counts, got {new.size} and {old.size}")
        idx = rng.integers(0, new.size, (resamples, new.size))
        ratios = np.median(new[idx], axis=1) / np.median(old[idx], axis=1)
    else:
        ratios = (np.median(new[rng.integers(0, new.size, (resamples, new.size))], axis=1)
                  / np.median(old[rng.integers(0, old.size, (resamples, old.size))], axis=1))
    return Ratio(ratio=float(np.median(new) / np.median(old)), ci=_interval(ratios, confidence), paired=paired)


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def _as_samples(samples_ms: Sequence[float]) -> np.ndarray:
    x = np.asarray(samples_ms, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("no timing samples")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("timing samples must be finite and non-negative")
    return x
