"""The efficiency report as a PNG: the paper's efficiency-gap plot and a roofline.

Left: each kernel's achieved GFLOP/s in execution order, against the machine's measured peak
(the gap is the efficiency lost) and against what the roofline allows at its arithmetic
intensity (the gap a better schedule could close). Right: the roofline, one dot per kernel
sized by its share of the time; dots left of the ridge sit under the memory slope (the
waterline): there bytes moved, not arithmetic, set the time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.errors import EdgecError
from edgec.fsutil import atomic_path


def plot_efficiency(report: dict, path: str | Path) -> Path:
    plt = _pyplot()
    rows, machine = report["layers"], report["machine"]
    peak, bandwidth = machine["gflops_per_s"], machine["gbytes_per_s"]
    fused = np.array([r["kind"] != "op" for r in rows])
    x = np.arange(len(rows))
    achieved = np.array([r["gflops_per_s"] for r in rows])
    roof = np.array([r["attainable_gflops_per_s"] for r in rows])

    fig, (gap, roofline) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    gap.bar(x, achieved, color=np.where(fused, "tab:orange", "tab:blue"))
    gap.scatter(x, roof, marker="_", s=120, color="black", label="roofline at the kernel's intensity")
    gap.axhline(peak, color="tab:red", linestyle="--", label=f"measured peak {peak:.1f} GFLOP/s")
    gap.set_yscale("log")
    gap.set_ylim(bottom=max(achieved[achieved > 0].min(initial=peak) / 2, 1e-3))
    gap.set_xticks(x, [r["name"] for r in rows], rotation=75, fontsize=7)
    gap.set_ylabel("achieved GFLOP/s (log)")
    gap.set_title("efficiency gap per kernel (orange: fused block)")
    gap.legend(fontsize=8, loc="lower right")

    intensity = np.array([max(r["flops_per_byte"], 1e-3) for r in rows])
    ridge = machine["ridge_flops_per_byte"]
    span = np.logspace(np.log10(min(intensity.min(), ridge) / 2), np.log10(max(intensity.max(), ridge) * 2), 100)
    roofline.plot(span, np.minimum(peak, span * bandwidth), color="black", label="roofline")
    share = np.array([r["time_share"] for r in rows])
    roofline.scatter(intensity, np.maximum(achieved, 1e-3), s=20 + 600 * share,
                     c=np.where(fused, "tab:orange", "tab:blue"), alpha=0.7, edgecolors="black")
    roofline.axvline(ridge, color="gray", linestyle=":", label=f"ridge {ridge:.1f} FLOP/B")
    roofline.set_xscale("log")
    roofline.set_yscale("log")
    roofline.set_xlabel("arithmetic intensity (FLOP per byte moved)")
    roofline.set_ylabel("GFLOP/s")
    roofline.set_title("roofline (dot area: share of time; left of the ridge: memory-bound)")
    roofline.legend(fontsize=8)
    fig.suptitle(f"{Path(report['artifact']).name} on {report['device']} ({machine['threads']} thread(s))")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise EdgecError("the efficiency plot needs matplotlib: pip install 'edgec[plots]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
