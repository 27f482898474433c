"""onnxruntime: the float and QDQ reference every artifact is checked against."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from edgec.runtimes.base import Runtime, TensorSpec

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,  # 16x8 layers' activations (faithfulness feeds them)
    "tensor(uint8)": np.uint8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, model: str | Path | bytes, num_threads: int | None = None,
                 optimize: bool = True):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # warnings about unused initializers are noise to users
        if num_threads:
            opts.intra_op_num_threads = num_threads
        if not optimize:
            # The reference must compute what the graph says, not a fused approximation.
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        src = model if isinstance(model, bytes) else str(model)
        self._sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
        self._feed: dict[str, np.ndarray] = {}
        self._out: list[np.ndarray] = []

    @classmethod
    def from_ir(cls, model, **kw) -> "OnnxRuntime":
        from edgec.ir import to_bytes

        return cls(to_bytes(model), **kw)

    @staticmethod
    def _spec(arg) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else -1 for d in arg.shape)
        return TensorSpec(arg.name, shape, np.dtype(_ORT_TYPES.get(arg.type, np.float32)))

    @property
    def inputs(self) -> list[TensorSpec]:
        return [self._spec(a) for a in self._sess.get_inputs()]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [self._spec(a) for a in self._sess.get_outputs()]

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        self._feed = {s.name: a for s, a in zip(self.inputs, inputs)}

    def invoke(self) -> None:
        self._out = self._sess.run(None, self._feed)

    def get_outputs(self) -> list[np.ndarray]:
        return [np.asarray(o) for o in self._out]
