"""Runtimes that run an artifact somewhere else and take all their samples in one round trip.

Emulated arm64 (qemu), WebAssembly (Node or a browser) and boards behind TVM RPC cannot be
timed from here one invoke at a time: a process start or a network round trip would swamp
the model. So `time()` sends warm-up and run counts with the inputs, the far side times each
invoke itself, and the samples come back together. With several artifacts of the same
runtime, `time_interleaved` has the far side alternate them (A B A B ...).

`run()` still works as the Runtime contract says; each call is one round trip.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgec.errors import EdgecError
from edgec.runtimes.base import Runtime, TensorSpec, Timing


@dataclasses.dataclass
class BatchReply:
    """What the far side sends back for one artifact."""

    samples_ms: list[float]
    outputs: list[np.ndarray]
    covers: str
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # threads, versions, machine...


class BatchRuntime(Runtime):
    """Base of out-of-process runtimes; subclasses implement `_batch`."""

    # True where samples come from an emulator: they measure translation, never ARM latency.
    emulated = False

    def __init__(self, path: str | Path):
        from edgec.runtimes.base import artifact_path

        self.path = artifact_path(path)
        self._inputs_spec, self._outputs_spec = artifact_signature(self.path)
        self._inputs: list[np.ndarray] | None = None
        self._outputs: list[np.ndarray] = []
        self.last_info: dict[str, Any] = {}

    @property
    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs_spec)

    @property
    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs_spec)

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        self._inputs = [np.ascontiguousarray(a) for a in inputs]

    def invoke(self) -> None:
        if self._inputs is None:
            raise EdgecError(f"{self.name}: set_inputs before invoke")
        (reply,) = self._batch([(self, self._inputs)], warmup=0, runs=1)
        self._outputs = reply.outputs
        self.last_info = reply.info

    def get_outputs(self) -> list[np.ndarray]:
        return list(self._outputs)

    def time(self, inputs: Sequence[np.ndarray], warmup: int = 10, repeat: int = 50) -> Timing:
        (reply,) = self._batch([(self, self._check_inputs(inputs))], warmup=warmup, runs=repeat)
        self._outputs, self.last_info = reply.outputs, reply.info
        return Timing(samples_ms=reply.samples_ms, warmup=warmup, runtime=self.name, covers=reply.covers)

    def time_interleaved(self, other: "BatchRuntime", inputs: Sequence[np.ndarray],
                         other_inputs: Sequence[np.ndarray], warmup: int = 10,
                         repeat: int = 50) -> tuple[Timing, Timing]:
        if type(other) is not type(self) or not self.same_device(other):
            raise EdgecError(f"{self.name}: --vs needs both artifacts on the same device and runtime")
        replies = self._batch([(self, self._check_inputs(inputs)), (other, other._check_inputs(other_inputs))],
                              warmup=warmup, runs=repeat)
        timings = []
        for rt, reply in zip((self, other), replies):
            rt._outputs, rt.last_info = reply.outputs, reply.info
            timings.append(Timing(samples_ms=reply.samples_ms, warmup=warmup, runtime=rt.name, covers=reply.covers))
        return timings[0], timings[1]

    def same_device(self, other: "BatchRuntime") -> bool:
        return True

    def close(self) -> None:
        """Release what the far side holds for this runtime (a board's RPC session)."""

    @abc.abstractmethod
    def _batch(self, jobs: list[tuple["BatchRuntime", list[np.ndarray]]], warmup: int,
               runs: int) -> list[BatchReply]:
        """Run every job `warmup` times untimed, then `runs` times timed, interleaved."""


def artifact_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of an artifact, read here without running it (it may be foreign)."""
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        from edgec.errors import ModelLoadError

        try:  # a FlatBuffer is the same on every architecture; no allocation needed to read it
            interp = Interpreter(model_path=str(path))
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"{path}: not a loadable TFLite model ({str(exc).strip()[:200]})") from None

        def spec(d):
            return TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]))

        return [spec(d) for d in interp.get_input_details()], [spec(d) for d in interp.get_output_details()]
    if path.suffix == ".so":
        from edgec.lower.tvm.signature import read_signature

        sig = read_signature(path)
        return list(sig.inputs), list(sig.outputs)
    raise EdgecError(f"{path}: expected a .tflite or TVM .so artifact for this device")


def tail(text: str, lines: int = 15) -> str:
    """The end of a child's output, for an error message."""
    return "\n".join(text.strip().splitlines()[-lines:])
