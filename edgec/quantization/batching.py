"""Run a graph exported for batch 1 on many samples per onnxruntime call.

Calibration and the per-layer report push hundreds of samples through the same graph; one
call per sample spends much of its time in per-call overhead and in kernels too small to use
the cores. The exported graphs have a static batch of 1, so a clone gets a symbolic batch
dimension, and the constant target shapes of Reshape nodes (the one place exporters bake the
batch in: flatten before the classifier, attention head splits) get their leading 1 replaced
by "whatever the input has". Other ways of baking it in (Expand, Tile, a constant Concat
operand) are not rewritten: `BatchedRunner` runs the clone on two samples, compares with the
batch-1 graph, and falls back to one sample per call when they do not agree.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

BATCH_DIM = "calibration_batch"


def batched_clone(proto: onnx.ModelProto) -> onnx.ModelProto | None:
    """A copy of a batch-1 graph with a symbolic batch dimension, or None when its inputs are not
    batch-1 tensors (a rank-0 input, or a leading dimension other than 1)."""
    for value in proto.graph.input:
        dims = value.type.tensor_type.shape.dim
        if not value.type.HasField("tensor_type") or not dims or dims[0].dim_value != 1:
            return None
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    for value in graph.input:
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    # Every inferred shape names batch 1; onnxruntime re-infers them from the new input shapes.
    del graph.value_info[:]
    for value in graph.output:
        value.type.tensor_type.ClearField("shape")
    initializers = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in initializers:
            shape = numpy_helper.to_array(initializers[node.input[1]])
            fixed = _batch_free_shape(shape, _allowzero(node))
            if fixed is None:
                continue
            name = f"{node.input[1]}/{node.name or node.output[0]}/batched"
            graph.initializer.append(numpy_helper.from_array(fixed, name))
            node.input[1] = name
    return out


def _allowzero(node: onnx.NodeProto) -> bool:
    return any(a.name == "allowzero" and a.i for a in node.attribute)


def _batch_free_shape(shape: np.ndarray, allowzero: bool) -> np.ndarray | None:
    """A Reshape target whose leading 1 follows the input's batch: -1 (inferred) when no other
    dimension is inferred, else 0 (copy the input's dimension 0)."""
    if shape.ndim != 1 or shape.size == 0 or shape[0] != 1:
        return None
    fixed = shape.copy()
    if -1 not in shape:
        fixed[0] = -1
    elif not allowzero:
        fixed[0] = 0
    else:
        return None
    return fixed


def stack(samples: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per-sample input lists (each array batch 1) -> one array per input, stacked on axis 0."""
    return [np.concatenate(arrays, axis=0) for arrays in zip(*samples)]


def chunks(samples: list, size: int):
    for start in range(0, len(samples), size):
        yield samples[start:start + size]


def rows_agree(joint: np.ndarray, rows: list[np.ndarray]) -> bool:
    """Whether a batched output holds, row by row, what the batch-1 graph gave each sample."""
    joint = np.asarray(joint)
    rows = [np.asarray(r) for r in rows]
    if rows[0].shape[:1] != (1,) or joint.shape != (len(rows), *rows[0].shape[1:]):
        return False
    return all(close(joint[k:k + 1], r) for k, r in enumerate(rows))


class BatchedRunner:
    """Runs lists of samples through a batch-1 graph, `max_batch` per call where a batched
    clone agrees with the graph on two samples (`agree(joint_outputs, per_sample_outputs)`;
    default: every output row by row), else one per call."""

    def __init__(self, proto: onnx.ModelProto, make_session, samples: list[list[np.ndarray]], max_batch: int,
                 agree=None):
        self.session = make_session(proto)
        self.batch_size = 1
        if max_batch < 2 or len(samples) < 2:
            return
        clone = batched_clone(proto)
        if clone is None:
            return
        agree = agree or (lambda joint, apart: all(rows_agree(j, [a[i] for a in apart])
                                                   for i, j in enumerate(joint)))
        pair = samples[:2]
        try:
            batched = make_session(clone)
            joint = self._run(batched, stack(pair))
        except Exception:  # noqa: BLE001 -- a shape the clone could not follow: run one sample per call
            return
        if agree(joint, [self._run(self.session, s) for s in pair]):
            self.session, self.batch_size = batched, max_batch

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def batches(self, samples: list[list[np.ndarray]]):
        """(inputs of one call, sample count) per call."""
        for part in chunks(samples, self.batch_size):
            yield (stack(part) if self.batch_size > 1 else part[0]), len(part)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self._run(self.session, inputs)

    @staticmethod
    def _run(session, inputs: list[np.ndarray]) -> list[np.ndarray]:
        names = [i.name for i in session.get_inputs()]
        return session.run(None, dict(zip(names, inputs)))


def batch_size_for(bytes_per_sample: int, budget: int = 256 << 20, cap: int = 16) -> int:
    """Samples per call so that `bytes_per_sample` times the batch stays within `budget`."""
    if bytes_per_sample <= 0:
        return 1
    return int(max(1, min(cap, budget // bytes_per_sample)))


def close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if not np.issubdtype(a.dtype, np.floating):
        return bool(np.array_equal(a, b))
    # Kernels may block a batch differently (another summation order): a few ulps of the data.
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5 * max(scale, 1e-30), equal_nan=True))
