"""Mixed precision for int8 targets: which layers leave int8, chosen by measured sensitivity.

Per-tensor int8 activations cost transformers their accuracy at a few layers (softmax inputs
and outputs, the attention matmuls, the linears after LayerNorm, residual adds), not
everywhere. So, as in AIMET's per-layer analysis or ai-edge-quantizer's selective
quantization, each layer's cost is measured and only the costly ones are given more precision:

1. sensitivity: each candidate layer alone in int8 (every other layer float), scored by
   output SQNR vs the float model on calibration samples: how much noise that layer's
   quantization (its weights, its input and output rounding) adds on its own;
2. greedy: starting from all-int8, the noisiest layers move to the higher precision one at a
   time until the whole model is within the user's budget; then each moved layer is tried
   back in int8 (least noisy first) and stays there if the budget still holds.

The higher precision is float fallback: the layer computes in float between a DequantizeLinear
and a QuantizeLinear (the TFLite file then has DEQUANTIZE -> float op -> QUANTIZE islands, which
every runtime runs). Layers that only move or clamp values (reshapes, transposes, pooling,
ReLU) add no rounding of their own: they follow their neighbours, so that no QDQ pair is left
between two float layers.

The budget is the allowed loss against the float model on the evaluation samples: in points of
top-1 agreement for classifiers, otherwise in percent relative RMS error (1% = 40 dB SQNR).
"""

from __future__ import annotations

import dataclasses
import math

import onnx_ir as ir

from edgec.errors import EdgecError
from edgec.ir import const_array, node_label
from edgec.passes.base import sole_consumer
from edgec.passes.quantize import SAME_PARAMS_OPS, integer_nodes
from edgec.quantization.calibration import CalibrationSet, Progress, Statistics
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.verify import compare_outputs

# Ops that pass values through (or clamp them) without a rounding of their own.
FOLLOWER_OPS = SAME_PARAMS_OPS | {"Relu", "Clip", "Identity", "Dropout"}
EVALUATION_SAMPLES = 200  # top-1 agreement to about half a point
SENSITIVITY_SAMPLES = 32  # SQNR settles with far fewer


@dataclasses.dataclass(frozen=True)
class Figures:
    sqnr_db: float
    top1_agreement: float | None

    def loss(self) -> float:
        """Points of top-1 agreement lost (classifiers), else percent relative RMS error."""
        if self.top1_agreement is not None:
            return 100.0 * (1.0 - self.top1_agreement)
        return 100.0 * 10 ** (-self.sqnr_db / 20) if math.isfinite(self.sqnr_db) else 0.0

    def as_dict(self) -> dict:
        return {"sqnr_db": self.sqnr_db, "top1_agreement": self.top1_agreement, "loss": self.loss()}


def budget_unit(classifier: bool) -> str:
    return "points of top-1 agreement with float" if classifier else "% relative RMS error vs float"


class _Scorer:
    """QDQ variants of one float graph (some layers kept float) against its float outputs."""

    def __init__(self, model: ir.Model, stats: Statistics, samples: list, bias_correction: bool,
                 quantize_options: dict):
        self.model, self.stats, self.samples = model, stats, samples
        self.bias_correction, self.options = bias_correction, quantize_options
        ref = OnnxRuntime.from_ir(model, optimize=False)
        self.reference = [ref.run(x) for x in samples]
        self.names = [v.name for v in model.graph.outputs]
        self.evaluations = 0

    def score(self, float_nodes: frozenset[str], samples: int | None = None) -> Figures:
        from edgec.quantization import quantize_model

        xs = self.samples[:samples] if samples else self.samples
        qdq, _ = quantize_model(self.model, CalibrationSet(xs, "evaluation"), statistics=self.stats,
                                exclude_nodes=float_nodes, bias_correction=self.bias_correction, **self.options)
        rt = OnnxRuntime.from_ir(qdq, optimize=False)
        figs = compare_outputs([rt.run(x) for x in xs], self.reference[:len(xs)], self.names)
        self.evaluations += 1
        return Figures(figs["sqnr_db"], figs["top1_agreement"])


@dataclasses.dataclass(frozen=True)
class Layer:
    """One decision: a node that rounds on its own, with the bias Add that follows a MatMul
    (torch exports Linear on 3-D inputs as MatMul + Add; TFLite makes them one FULLY_CONNECTED)."""

    nodes: tuple[ir.Node, ...]

    @property
    def head(self) -> ir.Node:
        return self.nodes[0]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(n.name for n in self.nodes)


def candidate_layers(graph: ir.Graph) -> tuple[list[Layer], list[ir.Node]]:
    """(layers that round on their own, followers) among the nodes that would run in int8.

    Nodes without a unique name cannot be singled out (the quantize pass excludes by name):
    they stay int8."""
    ints, _ = integer_nodes(graph, frozenset())
    counts: dict[str, int] = {}
    for node in graph:
        counts[node.name] = counts.get(node.name, 0) + 1
    named = [n for n in graph if n in ints and n.name and counts[n.name] == 1]
    rounding = [n for n in named if n.op_type not in FOLLOWER_OPS]
    bias_adds = {}
    for node in rounding:
        add = sole_consumer(node.outputs[0]) if node.op_type == "MatMul" else None
        if add is not None and add.op_type == "Add" and add in rounding and \
                any(v is not None and const_array(v) is not None for v in add.inputs):
            bias_adds[node] = add
    taken = set(bias_adds.values())
    layers = [Layer((n, bias_adds[n]) if n in bias_adds else (n,)) for n in rounding if n not in taken]
    return layers, [n for n in named if n.op_type in FOLLOWER_OPS]


def with_followers(floats: set[str], followers: list[ir.Node]) -> frozenset[str]:
    """`floats` plus the followers that read a float layer's output or feed only float layers,
    to a fixed point: a reshape between two float layers must not round."""
    out = set(floats)
    changed = True
    while changed:
        changed = False
        for node in followers:
            if node.name in out:
                continue
            data = node.inputs[0] if node.inputs else None
            producer = data.producer() if data is not None else None
            readers = [c for o in node.outputs for c in o.consumers()]
            feeds_graph_output = any(o.is_graph_output() for o in node.outputs)
            if (producer is not None and producer.name in out) or \
                    (readers and not feeds_graph_output and all(c.name in out for c in readers)):
                out.add(node.name)
                changed = True
    return frozenset(out)


def choose_float_fallback(model: ir.Model, data: CalibrationSet, stats: Statistics, budget: float, *,
                          bias_correction: bool = True, quantize_options: dict | None = None,
                          samples: int = EVALUATION_SAMPLES, progress: Progress | None = None) -> dict:
    """The layers to keep in float so that the int8 model is within `budget` of float, and the
    per-layer table behind the choice (see the module docstring)."""
    if budget < 0:
        raise EdgecError(f"--accuracy-budget must be >= 0 (got {budget})")
    layers, followers = candidate_layers(model.graph)
    if not layers:
        raise EdgecError("the model has no int8 layers to choose precisions for")
    evaluation = data.samples[-samples:]
    scorer = _Scorer(model, stats, evaluation, bias_correction, dict(quantize_options or {}))
    every = frozenset().union(*(layer.names for layer in layers)) | {f.name for f in followers}

    # 1. Each layer alone in int8: the noise it adds by itself.
    alone: dict[Layer, Figures] = {}
    for i, layer in enumerate(layers):
        alone[layer] = scorer.score(every - layer.names - _followers_of(layer, followers), SENSITIVITY_SAMPLES)
        if progress:
            progress("float-fallback sensitivity", i + 1, len(layers))
    order = sorted(layers, key=lambda layer: alone[layer].sqnr_db)  # noisiest first

    def floats_for(chosen: list[Layer]) -> frozenset[str]:
        return with_followers(set().union(*(layer.names for layer in chosen)), followers)

    # 2. Greedy: move the noisiest layers to float until the budget holds.
    baseline = scorer.score(frozenset())
    classifier = baseline.top1_agreement is not None
    chosen: list[Layer] = []
    current = baseline
    steps = []
    for layer in order:
        if current.loss() <= budget:
            break
        chosen.append(layer)
        current = scorer.score(floats_for(chosen))
        steps.append({"to_float": node_label(layer.head), **current.as_dict()})
        if progress:
            progress("float-fallback search", len(chosen), len(order))
    # 3. Back to int8 where the budget allows, least noisy first.
    if current.loss() <= budget:
        for layer in sorted(chosen, key=lambda c: -alone[c].sqnr_db):
            trial = [c for c in chosen if c is not layer]
            figs = scorer.score(floats_for(trial))
            if figs.loss() <= budget:
                chosen, current = trial, figs
                steps.append({"back_to_int8": node_label(layer.head), **figs.as_dict()})

    table = []
    for layer in order:
        figs = alone[layer]
        row = {"node": node_label(layer.head), "op": layer.head.op_type,
               "nodes": [node_label(n) for n in layer.nodes],
               "sqnr_db_alone_int8": figs.sqnr_db,
               "precision": "float" if layer in chosen else "int8"}
        if layer in chosen:
            row["why"] = (f"alone in int8 it leaves the output at {figs.sqnr_db:.1f} dB SQNR; with it in int8 "
                          f"the model is outside the budget")
        table.append(row)
    return {
        "scheme": "int8 with float fallback",
        "budget": budget,
        "unit": budget_unit(classifier),
        "evaluation_samples": len(evaluation),
        "baseline_int8": baseline.as_dict(),
        "result": current.as_dict(),
        "within_budget": current.loss() <= budget,
        "float_layers": [node_label(layer.head) for layer in order if layer in chosen],
        "float_nodes": sorted(floats_for(chosen)),  # followers included, as the quantize pass takes them
        "layers": table,
        "steps": steps,
        "evaluations": scorer.evaluations,
    }


def _followers_of(layer: Layer, followers: list[ir.Node]) -> frozenset[str]:
    """The followers next to `layer` (through other followers), which stay int8 with it when
    it alone is measured: they re-round on its grid, adding nothing, and spare QDQ pairs."""
    names = {f.name for f in followers}
    out: set[str] = set()
    frontier = list(layer.nodes)
    while frontier:
        n = frontier.pop()
        near = [v.producer() for v in n.inputs if v is not None] + [c for o in n.outputs for c in o.consumers()]
        for m in near:
            if m is not None and m.name in names and m.name not in out:
                out.add(m.name)
                frontier.append(m)
    return frozenset(out)
