"""PNG charts of benchmark results (matplotlib, headless Agg backend).

plot_distribution: one row per result: every sample as a dot, a box for p10..p90, the median
and its bootstrap interval; the x axis starts at 0 so relative differences look relative.
plot_vs: left, samples in the order taken (A and B interleaved, so drift shows as both
lines moving together); right, the ratio median(B)/median(A) with its interval, and the
regression limit when one was given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from edgec.bench.result import BenchResult
from edgec.errors import EdgecError


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise EdgecError("--plot needs matplotlib: pip install 'edgec[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _label(result: BenchResult) -> str:
    emu = " [EMULATED]" if result.emulated else ""
    return f"{Path(result.artifact['path']).name}\n{result.device['name']} / {result.runtime['name']}{emu}"


def plot_distribution(results: Sequence[BenchResult], path: str | Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 1.3 + 1.1 * len(results)))
    # A few stalls (page faults, preemption) can be 100x the median; an axis sized to them
    # would squash everything else. The axis ends past the 99th percentile and the stalls
    # are counted at its edge instead.
    xmax = max(float(np.percentile(r.samples_ms, 99)) for r in results) * 1.25
    rng = np.random.default_rng(0)
    for row, res in enumerate(results):
        s = res.stats
        samples = np.asarray(res.samples_ms)
        inside = samples[samples <= xmax]
        y = row + rng.uniform(-0.18, 0.18, inside.size)  # jitter so equal samples stay visible
        ax.scatter(inside, y, s=8, alpha=0.45, color="tab:blue", linewidths=0)
        beyond = samples[samples > xmax]
        if beyond.size:
            ax.annotate(f"{beyond.size} beyond, max {beyond.max():.3g} ms \u2192", (xmax * 0.995, row),
                        fontsize=7, ha="right", va="center", color="tab:blue")
        ax.add_patch(plt.Rectangle((s.p10_ms, row - 0.3), s.p90_ms - s.p10_ms, 0.6, fill=False,
                                   edgecolor="gray", linewidth=1))
        lo, hi = s.median_ci_ms
        ax.add_patch(plt.Rectangle((lo, row - 0.3), max(hi - lo, 1e-9), 0.6, color="tab:orange", alpha=0.35))
        ax.plot([s.median_ms] * 2, [row - 0.3, row + 0.3], color="tab:red", linewidth=2)
        ax.annotate(f"median {s.median_ms:.3g} ms [{lo:.3g}, {hi:.3g}]  p10 {s.p10_ms:.3g}  p90 {s.p90_ms:.3g}  "
                    f"cv {s.cv:.1%}  n={s.n}", (0.01 * xmax, row - 0.33), fontsize=8, ha="left", va="bottom")
    ax.set_yticks(range(len(results)), [_label(r) for r in results], fontsize=8)
    ax.set_ylim(len(results) - 0.25, -0.6)  # first result on top
    ax.set_xlim(0, xmax)
    ax.set_xlabel("latency per invoke (ms); box p10-p90, red median, orange 95% CI of the median")
    ax.set_title("edgec bench: latency distribution", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, plt, path)


def plot_vs(vs, path: str | Path, max_regression: float | None = None) -> Path:
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    for res, name, color in ((vs.a, "A", "tab:blue"), (vs.b, "B", "tab:orange")):
        left.plot(res.samples_ms, ".-", markersize=3, linewidth=0.6, color=color,
                  label=f"{name}: {Path(res.artifact['path']).name}  median {res.stats.median_ms:.3g} ms")
    left.set_xlabel("run (A and B alternate)")
    left.set_ylabel("ms per invoke")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8, loc="lower right")
    left.set_title(f"interleaved samples on {vs.a.device['name']}", fontsize=10)
    r = vs.ratio
    right.errorbar([0], [r.ratio], yerr=[[r.ratio - r.ci[0]], [r.ci[1] - r.ratio]], fmt="o",
                   color="black", capsize=8)
    right.axhline(1.0, color="gray", linewidth=1)
    if max_regression is not None:
        right.axhline(1.0 + max_regression, color="tab:red", linestyle="--", linewidth=1,
                      label=f"limit +{max_regression:.0%}")
        right.legend(fontsize=8)
    right.set_xticks([0], ["B / A"])
    right.set_title(f"ratio {r.ratio:.3f}\n95% CI [{r.ci[0]:.3f}, {r.ci[1]:.3f}]", fontsize=10)
    lo = min(r.ci[0], 1.0, 1.0 + (max_regression or 0)) * 0.95
    hi = max(r.ci[1], 1.0, 1.0 + (max_regression or 0)) * 1.05
    right.set_ylim(lo, hi)
    return _save(fig, plt, path)


def _save(fig, plt, path: str | Path) -> Path:
    from edgec.fsutil import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)
