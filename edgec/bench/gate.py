"""The latency-regression gate: fail only on a slowdown that is both large and real.

A run is a regression when the whole bootstrap interval of median(new) / median(old) lies
above 1 + max_regression. Demanding the interval, not just the point ratio, keeps a noisy
machine from failing CI on luck: a 7% slower median whose interval reaches down to 0.98 is
reported but passes, while a 40% slowdown with interval [1.35, 1.46] fails.
"""

from __future__ import annotations

import dataclasses
import re

from edgec.bench.result import BenchResult
from edgec.bench.stats import CONFIDENCE, Ratio, median_ratio
from edgec.errors import EdgecError


class RegressionError(EdgecError):
    """The gate found a significant slowdown; the CLI exits with this code."""

    exit_code = 4


@dataclasses.dataclass(frozen=True)
class Verdict:
    ratio: Ratio
    max_regression: float
    regressed: bool
    warnings: tuple[str, ...] = ()

    @property
    def threshold(self) -> float:
        return 1.0 + self.max_regression

    def message(self) -> str:
        r = self.ratio
        lo, hi = r.ci
        head = (f"median ratio new/baseline = {r.ratio:.3f} "
                f"({CONFIDENCE:.0%} interval {lo:.3f} .. {hi:.3f}); limit {self.threshold:.3f}")
        if self.regressed:
            return f"REGRESSION: {head}: slower by more than {self.max_regression:.1%}, and the interval excludes the limit"
        if r.ratio > self.threshold:
            return f"pass (not significant): {head}: the interval reaches below the limit; re-run with more --runs to decide"
        if hi < 1.0 - self.max_regression:
            return f"pass (faster by more than {self.max_regression:.1%}): {head}"
        return f"pass: {head}"

    def to_json(self) -> dict:
        return {**self.ratio.to_json(), "max_regression": self.max_regression,
                "regressed": self.regressed, "warnings": list(self.warnings)}


def parse_fraction(text: str | float) -> float:
    """'5%' -> 0.05, '0.05' -> 0.05."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", str(text))
        if not m:
            raise EdgecError(f"--max-regression {text!r}: expected a percentage like 5% or a fraction like 0.05")
        value = float(m.group(1)) / (100.0 if m.group(2) else 1.0)
    if not 0 <= value < 10:
        raise EdgecError(f"--max-regression {text!r}: expected a value between 0% and 1000%")
    return value


def check_regression(current: BenchResult, baseline: BenchResult, max_regression: float) -> Verdict:
    """Compare two separate runs (unpaired bootstrap)."""
    ratio = median_ratio(current.samples_ms, baseline.samples_ms, paired=False)
    regressed = ratio.ci[0] > 1.0 + max_regression
    return Verdict(ratio=ratio, max_regression=max_regression, regressed=regressed,
                   warnings=tuple(comparability_warnings(current, baseline)))


def comparability_warnings(current: BenchResult, baseline: BenchResult) -> list[str]:
    """Differences that make a latency comparison doubtful, said rather than refused."""
    warnings = []
    pairs = [
        ("device", current.device.get("name"), baseline.device.get("name")),
        ("runtime", current.runtime.get("name"), baseline.runtime.get("name")),
        ("threads", current.runtime.get("threads"), baseline.runtime.get("threads")),
        ("cpu", current.device.get("machine", {}).get("cpu"), baseline.device.get("machine", {}).get("cpu")),
    ]
    for what, new, old in pairs:
        if new != old:
            warnings.append(f"{what} differs from the baseline: {new!r} now, {old!r} then")
    if current.emulated or baseline.emulated:
        warnings.append("emulated timings (qemu): they show translation cost, not ARM latency")
    return warnings
