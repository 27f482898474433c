"""LiteRT (ai-edge-litert): runs a .tflite file, with the XNNPACK delegate by default.

`delegation()` reports what XNNPACK actually took. After `allocate_tensors()` the
interpreter's node list is the model's operators followed by one DELEGATE node per
partition XNNPACK claimed; each DELEGATE node's inputs and outputs bound its partition, so
walking back from its outputs to its inputs finds the operators it replaced.
"""

from __future__ import annotations

import contextlib
import os
import sys

from pathlib import Path
from typing import Sequence

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgec.errors import ModelLoadError
from edgec.runtimes.base import Runtime, TensorSpec, artifact_path


@contextlib.contextmanager
def _native_stderr_silenced():
    """LiteRT's C++ logs 'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.' on every load,
    straight to file descriptor 2; users of the CLI should not see it."""
    if os.environ.get("EDGEC_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LiteRTRuntime(Runtime):
    """A .tflite file loaded in LiteRT's interpreter.

    num_threads: threads for XNNPACK and the CPU kernels (None: LiteRT's Python default, 1).
    xnnpack: False resolves builtin kernels only (BUILTIN_WITHOUT_DEFAULT_DELEGATES).
    """

    name = "litert"

    def __init__(self, path: str | Path, num_threads: int | None = None, xnnpack: bool = True):
        self.path = artifact_path(path)
        self.xnnpack = xnnpack
        resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            with _native_stderr_silenced():
                self._interp = Interpreter(
                    model_path=str(self.path), num_threads=num_threads,
                    experimental_op_resolver_type=resolver,
                )
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{self.path}: not a loadable TFLite model ({first_line})") from None
        self._inputs = self._interp.get_input_details()
        self._outputs = self._interp.get_output_details()

    @staticmethod
    def _spec(detail: dict) -> TensorSpec:
        return TensorSpec(detail["name"], tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]))

    @property
    def inputs(self) -> list[TensorSpec]:
        return [self._spec(d) for d in self._inputs]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [self._spec(d) for d in self._outputs]

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        for detail, array in zip(self._inputs, inputs):
            self._interp.set_tensor(detail["index"], array)

    def invoke(self) -> None:
        self._interp.invoke()

    def get_outputs(self) -> list[np.ndarray]:
        return [self._interp.get_tensor(d["index"]).copy() for d in self._outputs]

    def delegation(self) -> dict:
        """How much of the model XNNPACK runs: operator counts and what stayed on CPU kernels."""
        wrapper = self._interp._interpreter  # the only place LiteRT exposes its node list
        nodes = [
            (wrapper.NodeName(i), list(wrapper.NodeInputs(i)), list(wrapper.NodeOutputs(i)))
            for i in range(wrapper.NumNodes())
        ]
        delegates = [n for n in nodes if n[0] == "DELEGATE"]
        model_ops = nodes[: len(nodes) - len(delegates)]
        delegated = _delegated_ops(model_ops, delegates)
        left = [name for i, (name, _, _) in enumerate(model_ops) if i not in delegated]
        total = len(model_ops)
        return {
            "nodes": total,
            "delegated": len(delegated),
            "fraction": len(delegated) / total if total else 1.0,
            "delegate_kernels": len(delegates),
            "not_delegated": left,
        }


def _delegated_ops(model_ops: list[tuple[str, list[int], list[int]]],
                   delegates: list[tuple[str, list[int], list[int]]]) -> set[int]:
    """Indices of model operators inside some DELEGATE node's partition."""
    producer = {t: i for i, (_, _, outs) in enumerate(model_ops) for t in outs}
    taken: set[int] = set()
    for _, ins, outs in delegates:
        boundary = set(ins)
        stack = [t for t in outs if t >= 0]
        seen: set[int] = set()
        while stack:
            t = stack.pop()
            if t in seen or t in boundary or t not in producer:
                continue
            seen.add(t)
            op = producer[t]
            taken.add(op)
            stack.extend(i for i in model_ops[op][1] if i >= 0)
    return taken


def intermediate_tensors(path: str | Path, samples: Sequence[Sequence[np.ndarray]],
                         tensors: Sequence[int]) -> list[dict[int, np.ndarray]]:
    """The values of `tensors` (indices into the file's subgraph) on each sample, computed by
    LiteRT's builtin kernels with every tensor kept (XNNPACK hides a delegated partition's
    inside): what a layer-by-layer comparison with the quantized reference reads."""
    path = artifact_path(path)
    try:
        with _native_stderr_silenced():
            interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: not a loadable TFLite model ({first_line})") from None
    details = interp.get_input_details()
    results = []
    for sample in samples:
        for detail, array in zip(details, sample):
            interp.set_tensor(detail["index"], np.asarray(array, dtype=detail["dtype"]))
        interp.invoke()
        results.append({int(t): interp.get_tensor(int(t)).copy() for t in tensors})
    return results
