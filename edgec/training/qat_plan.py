"""Which torch values QAT must quantize: read off the graph that compile will quantize.

QAT is faithful only if it quantizes exactly the tensors the quantize pass quantizes, with the
same sharing of parameters. Rather than restating passes/quantize.py's rules for torch modules,
QAT exports the float model once, runs the target's passes, asks the quantize pass's own helpers
which tensors get Q/DQ (and which weights), and then finds the torch value each of those ONNX
tensors is, by running both graphs on random inputs and comparing values.

Matching by value rather than by name: the exporter's tensor names come from torch.export's
graph, not from the module's own FX trace, and BatchNorm is already folded into the convs.
Values do not care. Candidates must have the same shape and values within 1e-3 of the tensor's
largest magnitude (float folding differences are ~1e-6) on two random inputs; among them the
earliest torch value not yet taken wins, so a value read through an nn.Identity maps to its
producer, and a fused Conv's output (a BatchNorm's output in torch) is taken before the Relu
after it can claim it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir
import torch
import torch.fx as fx

from edgec.errors import EdgecError, PassError
from edgec.ir import const_array, node_label
from edgec.passes.quantize import (
    QuantizeOptions,
    QuantizeQDQ,
    _float_data_inputs,
    integer_nodes,
    parameter_groups,
)
from edgec.quantization.calibration import exposing_session

WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


@dataclasses.dataclass(frozen=True)
class WeightNode:
    """An integer Conv/Gemm/MatMul with constant weights: a quantized layer in torch."""

    name: str  # the ONNX node's name (the key of node_weight_bits)
    op_type: str
    input: str  # its quantized activation input
    output: str


@dataclasses.dataclass
class QuantizationPlan:
    tensors: list[str]  # activations that get Q/DQ, in graph order
    groups: list[tuple[list[str], tuple[float, int] | None]]  # members sharing parameters, fixed ones
    weight_nodes: list[WeightNode]


def plan_quantization(model: ir.Model) -> QuantizationPlan:
    """The quantize pass's decisions for `model` (a float graph after the target's passes)."""
    graph = model.graph
    ints, _ = integer_nodes(graph, frozenset())
    fused = QuantizeQDQ._fused_pairs(graph, ints)
    tensors = QuantizeQDQ(QuantizeOptions(ranges={}))._quantized_tensors(graph, ints, fused)
    wanted = set(tensors)

    try:
        groups = parameter_groups(graph, ints, tensors)
    except PassError as exc:
        raise EdgecError(str(exc)) from None

    weight_nodes = []
    for node in graph:
        if node not in ints:
            continue
        weight = const_array(node.inputs[1]) if node.op_type in WEIGHT_OPS and len(node.inputs) > 1 else None
        if weight is not None and weight.ndim >= 2:
            if node.inputs[0].name not in wanted:
                raise EdgecError(f"{node.op_type} '{node_label(node)}': its input '{node.inputs[0].name}' "
                                 "is not quantized, so QAT cannot quantize its bias")
            weight_nodes.append(WeightNode(node.name, node.op_type, node.inputs[0].name, node.outputs[0].name))
            continue
        constants = [i for i in _float_data_inputs(node) if const_array(node.inputs[i]) is not None]
        if constants and node.op_type not in WEIGHT_OPS:
            raise EdgecError(
                f"{node.op_type} '{node_label(node)}' has a constant operand, which the quantize pass "
                "quantizes per tensor; QAT does not model that yet (keep such constants out of the model, "
                "or quantize it post-training)")
    return QuantizationPlan(tensors, groups, weight_nodes)


def _onnx_values(model: ir.Model, names: list[str], inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    sess, outputs = exposing_session(model, names)
    feed = {i.name: x for i, x in zip(sess.get_inputs(), inputs)}
    return {n: v for n, v in zip(outputs, sess.run(None, feed)) if n in set(names)}


class _Recorder(fx.Interpreter):
    """Runs a traced module and keeps every tensor value, by FX node."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.values: dict[fx.Node, torch.Tensor] = {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        if isinstance(out, torch.Tensor):
            self.values[n] = out.detach()
        return out


def _close(a: np.ndarray, b: torch.Tensor) -> bool:
    if tuple(b.shape) != a.shape or not b.is_floating_point():
        return False
    tol = 1e-3 * max(float(np.max(np.abs(a))) if a.size else 0.0, 1e-6)
    return bool(np.max(np.abs(a - b.numpy()), initial=0.0) <= tol)


def match_values(model: ir.Model, plan: QuantizationPlan, gm: fx.GraphModule,
                 probes: list[list[torch.Tensor]]) -> dict[str, fx.Node]:
    """ONNX tensor name -> the FX node computing the same value, for every tensor QAT needs.

    A candidate must match on every probe input: with two random probes, a coincidence (a Relu
    whose input happened to be all positive, a dead layer's zeros) cannot survive both."""
    needed = list(dict.fromkeys(plan.tensors + [w.output for w in plan.weight_nodes]))
    onnx_runs, fx_runs = [], []
    for inputs in probes:
        onnx_runs.append(_onnx_values(model, needed, [x.numpy() for x in inputs]))
        recorder = _Recorder(gm)
        with torch.no_grad():
            recorder.run(*inputs)
        fx_runs.append(recorder.values)
    fx_order = [n for n in gm.graph.nodes if all(n in values for values in fx_runs)]

    order = [v.name for v in model.graph.inputs] + [o.name for node in model.graph for o in node.outputs]
    wanted = set(needed)
    taken: set[fx.Node] = set()
    matches: dict[str, fx.Node] = {}
    for name in (n for n in order if n in wanted):
        found = next((n for n in fx_order if n not in taken
                      and all(_close(o[name], f[n]) for o, f in zip(onnx_runs, fx_runs))), None)
        if found is None:
            raise EdgecError(
                f"QAT found no torch value equal to ONNX tensor '{name}' {list(onnx_runs[0][name].shape)}, which "
                "the quantize pass quantizes; QAT needs each such tensor to exist in the module's forward "
                "(as traced by torch.fx)")
        matches[name] = found
        taken.add(found)
    return matches
