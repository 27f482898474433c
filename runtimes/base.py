"""The contract every runtime keeps: load an artifact, run it, time it.

`run(inputs) -> outputs` takes and returns numpy arrays in the artifact's signature order.
`time(inputs, warmup, repeat) -> Timing` keeps every sample; statistics are derived from them.
The timed region is one `invoke` of the loaded artifact with inputs already set: it excludes
loading, compilation, allocation and I/O.
"""

from __future__ import annotations

import abc
import dataclasses
import time as _time
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclasses.dataclass
class Timing:
    """Latency samples in milliseconds, in the order they were taken."""

    samples_ms: list[float]
    warmup: int
    runtime: str
    covers: str = "one invoke with inputs already set; excludes load, compile, allocation and I/O"

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def p10_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 10))

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 90))

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.samples_ms))

    @property
    def cv(self) -> float:
        """Coefficient of variation (std / mean) of the samples."""
        m = self.mean_ms
        return float(np.std(self.samples_ms) / m) if m > 0 else 0.0

    def summary(self) -> dict:
        return {
            "runtime": self.runtime,
            "n": len(self.samples_ms),
            "warmup": self.warmup,
            "median_ms": self.median_ms,
            "p10_ms": self.p10_ms,
            "p90_ms": self.p90_ms,
            "mean_ms": self.mean_ms,
            "cv": self.cv,
            "covers": self.covers,
        }


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


class Runtime(abc.ABC):
    """A loaded artifact that can be run and timed on this machine."""

    name: str = "runtime"

    @property
    @abc.abstractmethod
    def inputs(self) -> list[TensorSpec]: ...

    @property
    @abc.abstractmethod
    def outputs(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        """Copy inputs into the runtime (outside the timed region)."""

    @abc.abstractmethod
    def invoke(self) -> None:
        """Run once on the inputs last set (the timed region)."""

    @abc.abstractmethod
    def get_outputs(self) -> list[np.ndarray]: ...

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.set_inputs(self._check_inputs(inputs))
        self.invoke()
        return self.get_outputs()

    def time(self, inputs: Sequence[np.ndarray], warmup: int = 10, repeat: int = 50) -> Timing:
        self.set_inputs(self._check_inputs(inputs))
        for _ in range(warmup):
            self.invoke()
        samples = []
        for _ in range(repeat):
            t0 = _time.perf_counter_ns()
            self.invoke()
            samples.append((_time.perf_counter_ns() - t0) / 1e6)
        return Timing(samples_ms=samples, warmup=warmup, runtime=self.name)

    def _check_inputs(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        from edgec.errors import InputShapeError

        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        specs = self.inputs
        if len(inputs) != len(specs):
            raise InputShapeError(
                f"{self.name}: the artifact takes {len(specs)} input(s) "
                f"({', '.join(s.name for s in specs)}), got {len(inputs)}"
            )
        out = []
        for spec, arr in zip(specs, inputs):
            arr = np.asarray(arr)
            if tuple(arr.shape) != tuple(spec.shape):
                raise InputShapeError(
                    f"{self.name}: input '{spec.name}' has shape {list(spec.shape)}, got {list(arr.shape)}"
                )
            out.append(np.asarray(arr, dtype=spec.dtype, order="C"))  # keeps 0-d inputs 0-d
        return out


def artifact_path(path: str | Path) -> Path:
    from edgec.errors import ModelLoadError

    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"{p}: artifact not found")
    return p
