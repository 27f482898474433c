"""The float graph with calibration's reductions computed inside it.

Exposing every activation as a graph output makes onnxruntime keep them all alive and copy
them into numpy, where min, max and channel sums read each one again, on one core. Instead,
each observed tensor t gets ReduceMin / ReduceMax (and, where bias correction needs the
channel means, ReduceSum) consumers that leave only a [batch, channels] row per statistic (a
scalar min/max for tensors without channels), so onnxruntime frees activations as it goes and
reduces them on its own threads, while the data is still in cache. The channel convention is the observers' (edgec.quantization.observers).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto, helper, numpy_helper

from edgec.ir import static_shape
from edgec.quantization.batching import close, rows_agree
from edgec.quantization.observers import TensorObserver, channel_axis

OPS = ("ReduceMin", "ReduceMax", "ReduceSum")


@dataclasses.dataclass
class Reduction:
    tensor: str
    outputs: tuple[str, ...]  # min, max[, sum] output names
    per_channel: bool  # rows [batch, channels]; else whole-tensor scalars (and no sum)
    per_sample_count: int = 0  # elements per channel in one sample (per_channel only)


def static_shapes(model: ir.Model, proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Static shapes of the graph's tensors: the IR's, else onnx shape inference's (a model
    built without value_info still gets per-channel statistics)."""
    shapes = {v.name: static_shape(v) for v in model.graph.inputs}
    shapes.update((o.name, static_shape(o)) for node in model.graph for o in node.outputs)
    if any(s is None for s in shapes.values()):
        try:
            inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True).graph
        except Exception:  # noqa: BLE001 -- inference is a best effort; unknown shapes stay unknown
            inferred = None
        if inferred is not None:
            for v in list(inferred.value_info) + list(inferred.output):
                dims = v.type.tensor_type.shape.dim if v.type.tensor_type.HasField("shape") else None
                if shapes.get(v.name) is None and dims is not None and all(d.HasField("dim_value") for d in dims):
                    shapes[v.name] = tuple(d.dim_value for d in dims)
    return {n: s for n, s in shapes.items() if s is not None}


def _opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def reducing_graph(proto: onnx.ModelProto, names: list[str], shapes: dict[str, tuple[int, ...]],
                   sums: set[str] = frozenset()) -> tuple[onnx.ModelProto, list[Reduction]]:
    """`proto` (a batch-1 graph; `shapes`: its tensors' static shapes) plus, per name, its
    reductions as extra outputs: min and max, and for the names in `sums` the channel sums.

    Per-channel rows need a static batch-1 shape with the batch on axis 0 (a tensor of
    rank >= 2); other tensors get whole-tensor min/max."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    opset = _opset(out)
    producers = {o: i for i, node in enumerate(graph.node) for o in node.output}
    inserts: dict[int, list[onnx.NodeProto]] = {}  # after node index (-1: before the first)
    reductions = []
    for k, name in enumerate(names):
        shape = shapes.get(name)
        axis = channel_axis(len(shape)) if shape is not None and shape[:1] == (1,) else None
        if axis is not None:
            # Keep axis 0 (batch) and the channel axis: rows that a batch of samples stacks.
            axes = [a for a in range(1, len(shape)) if a != axis]
            ops = OPS if name in sums else OPS[:2]
        else:
            axes, ops = None, OPS[:2]
        outputs = tuple(f"{name}/calibration_{op[6:].lower()}" for op in ops)
        nodes = []
        for op, o in zip(ops, outputs):
            if axes is None:
                nodes.append(helper.make_node(op, [name], [o], keepdims=0))
            elif not axes:
                nodes.append(helper.make_node("Identity", [name], [o]))
            elif (op == "ReduceSum" and opset >= 13) or opset >= 18:
                axes_name = f"{name}/calibration_axes"
                if not any(i.name == axes_name for i in graph.initializer):
                    graph.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), axes_name))
                nodes.append(helper.make_node(op, [name, axes_name], [o], keepdims=0))
            else:
                nodes.append(helper.make_node(op, [name], [o], keepdims=0, axes=axes))
            graph.output.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, None))
        inserts.setdefault(producers.get(name, -1), []).extend(nodes)
        count = int(np.prod(shape)) // shape[axis] if axis is not None else 0
        reductions.append(Reduction(name, outputs, axis is not None, count))
    # Each reduction right after its producer: onnxruntime runs in this order, so it reads the
    # activation while it is still in cache.
    ordered = list(inserts.get(-1, []))
    for i, node in enumerate(graph.node):
        ordered.append(node)
        ordered += inserts.get(i, [])
    del graph.node[:]
    graph.node.extend(ordered)
    return out, reductions


def observe(reductions: list[Reduction], values: dict[str, np.ndarray], samples: int,
            observers: dict[str, TensorObserver]) -> None:
    """Fold one call's reduction outputs (for `samples` samples) into the observers."""
    for r in reductions:
        obs = observers[r.tensor]
        if r.per_channel:
            lo, hi = np.asarray(values[r.outputs[0]]), np.asarray(values[r.outputs[1]])
            total = np.asarray(values[r.outputs[2]], np.float64).sum(axis=0) if len(r.outputs) > 2 else None
            obs.update_reduced(lo.min(axis=0), hi.max(axis=0), total, r.per_sample_count * lo.shape[0])
        else:
            lo, hi = (values[o] for o in r.outputs)
            obs.update_reduced(lo, hi)


def reductions_agree(reductions: list[Reduction], output_names: list[str]):
    """The check a batched reducing graph must pass against the batch-1 one (BatchedRunner's
    `agree`): graph outputs and per-channel rows row by row, whole-tensor extremes as the
    extremes of the two samples."""
    kinds = {}
    for r in reductions:
        for i, o in enumerate(r.outputs):
            kinds[o] = "rows" if r.per_channel else ("min" if i == 0 else "max")

    def agree(joint: list[np.ndarray], apart: list[list[np.ndarray]]) -> bool:
        for i, name in enumerate(output_names):
            rows = [a[i] for a in apart]
            kind = kinds.get(name, "rows")
            if kind == "rows":
                ok = rows_agree(joint[i], rows)
            else:
                pick = np.minimum if kind == "min" else np.maximum
                ok = close(np.asarray(joint[i]), pick(np.asarray(rows[0]), np.asarray(rows[1])))
            if not ok:
                return False
        return True

    return agree
