"""What `compile` returns: the artifact files, the report, and a way to run them here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgec.errors import EdgecError
from edgec.runtimes.placement import why_not_on_this_cpu
from edgec.targets import Target, host_arch

# Artifact file suffix per format.
SUFFIX = {"tflite": ".tflite", "tvm": ".so"}


def open_runtime(path: str | Path, **options):
    """A host runtime for an artifact file, chosen by its suffix."""
    path = Path(path)
    if path.suffix == ".tflite":
        from edgec.runtimes.litert import LiteRTRuntime

        return LiteRTRuntime(path, **options)
    if path.suffix == ".so":
        from edgec.runtimes.tvmrt import TVMRuntime

        return TVMRuntime(path, **options)
    if path.suffix == ".onnx":
        from edgec.runtimes.onnxrt import OnnxRuntime

        return OnnxRuntime(path, **options)
    raise EdgecError(f"{path}: unknown artifact type '{path.suffix}'; expected .tflite, .so or .onnx")


class FloatIO:
    """Feeds an int8-I/O artifact (--io int8) float inputs and returns float outputs, with the
    quantization parameters the lowering recorded: how verification compares it with float."""

    def __init__(self, runtime, inputs: list[dict], outputs: list[dict]):
        self.runtime, self.name = runtime, runtime.name
        self._in, self._out = inputs, outputs

    def run(self, xs) -> list[np.ndarray]:
        fed = [np.clip(np.rint(x / s["scale"]) + s["zero_point"], -128, 127).astype(np.int8)
               if "scale" in s else x for x, s in zip(xs, self._in)]
        outs = self.runtime.run(fed)
        return [(o.astype(np.float32) - s["zero_point"]) * np.float32(s["scale"]) if "scale" in s else o
                for o, s in zip(outs, self._out)]

    def delegation(self) -> dict:
        return self.runtime.delegation()


def runs_on_host(fmt: str, target: Target) -> bool:
    """TFLite flatbuffers are architecture-independent; a TVM .so only loads on its own arch."""
    if fmt == "tflite":
        return True
    return target.arch == host_arch()


@dataclasses.dataclass
class Artifact:
    target: Target
    paths: dict[str, Path]  # format -> artifact file
    report: dict
    report_path: Path | None

    def runtime(self, fmt: str | None = None, **options):
        fmt = fmt or next((f for f in self.paths if runs_on_host(f, self.target)), None)
        if fmt is None or fmt not in self.paths:
            raise EdgecError(
                f"no {fmt or 'host-runnable'} artifact for target '{self.target.name}' "
                f"(have: {', '.join(self.paths) or 'none'})"
            )
        lacking = why_not_on_this_cpu(self.target) if fmt != "tflite" else None
        if lacking:
            raise EdgecError(f"the {fmt} artifact for '{self.target.name}' cannot run here: {lacking}")
        if not runs_on_host(fmt, self.target):
            raise EdgecError(
                f"the {fmt} artifact is built for {self.target.arch}; this host is {host_arch()}. "
                "Run it on a matching device (`edgec bench --device ...`) or use the tflite artifact"
            )
        return open_runtime(self.paths[fmt], **options)

    def run(self, *inputs: np.ndarray, fmt: str | None = None) -> list[np.ndarray]:
        """Run the artifact on this host (TFLite by default) and return its outputs."""
        return self.runtime(fmt).run(list(inputs))

    def __repr__(self) -> str:
        files = ", ".join(f"{k}={v}" for k, v in self.paths.items())
        return f"Artifact(target={self.target.name!r}, {files})"
