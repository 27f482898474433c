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

The higher precision (`fallback`) is one of
- "float": the layer computes in float between a DequantizeLinear and a QuantizeLinear (the
  TFLite file then has DEQUANTIZE -> float op -> QUANTIZE islands, which every runtime runs);
- "int16": TFLite's 16x8 mode for that layer: int16 activations (symmetric, zero point 0),
  int8 weights, int64 bias; a tensor between an int8 and a 16x8 layer is requantized. Only
  ops with 16x8 kernels (passes/quantize.py INT16_OPS) are candidates. XNNPACK has no 16x8
  kernels: LiteRT runs those layers on its builtin kernels; integer-only accelerators are
  where this mode pays.
Layers that only move or clamp values (reshapes, transposes, pooling, ReLU) add no rounding of
their own: they follow their neighbours, so that no QDQ pair is left between two layers of
the higher precision.

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
from edgec.passes.quantize import INT16_OPS, SAME_PARAMS_OPS, integer_nodes
from edgec.quantization.calibration import CalibrationSet, Progress, Statistics
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.verify import compare_outputs

# Ops that pass values through (or clamp them) without a rounding of their own.
FOLLOWER_OPS = SAME_PARAMS_OPS | {"Relu", "Clip", "Identity", "Dropout"}
FALLBACKS = ("float", "int16")
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


def assignment_options(nodes: frozenset[str], fallback: str) -> dict:
    """quantize_model keyword arguments that give `nodes` the `fallback` precision."""
    return {"exclude_nodes": nodes} if fallback == "float" else {"int16_nodes": nodes}


class _Scorer:
    """QDQ variants of one float graph (some layers float or 16x8) against its float outputs."""

    def __init__(self, model: ir.Model, stats: Statistics, samples: list, bias_correction: bool,
                 quantize_options: dict, fallback: str):
        self.model, self.stats, self.samples = model, stats, samples
        self.bias_correction, self.options, self.fallback = bias_correction, quantize_options, fallback
        ref = OnnxRuntime.from_ir(model, optimize=False)
        self.reference = [ref.run(x) for x in samples]
        self.names = [v.name for v in model.graph.outputs]
        self.evaluations = 0

    def score(self, moved: frozenset[str], samples: int | None = None, fallback: str | None = None) -> Figures:
        """Figures with `moved` at the fallback precision (or `fallback`), the rest int8."""
        from edgec.quantization import quantize_model

        xs = self.samples[:samples] if samples else self.samples
        qdq, _ = quantize_model(self.model, CalibrationSet(xs, "evaluation"), statistics=self.stats,
                                bias_correction=self.bias_correction, **self.options,
                                **assignment_options(moved, fallback or self.fallback))
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


def candidate_layers(graph: ir.Graph, fallback: str = "float") -> tuple[list[Layer], list[ir.Node]]:
    """(layers that round on their own, followers) among the nodes that would run in int8 and
    can take the `fallback` precision.

    Nodes without a unique name cannot be singled out (the quantize pass excludes by name):
    they stay int8."""
    ints, _ = integer_nodes(graph, frozenset())
    if fallback == "int16":
        ints = {n for n in ints if n.op_type in INT16_OPS}
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


def choose_precisions(model: ir.Model, data: CalibrationSet, stats: Statistics, budget: float, *,
                      fallback: str = "float", bias_correction: bool = True, quantize_options: dict | None = None,
                      samples: int = EVALUATION_SAMPLES, progress: Progress | None = None) -> dict:
    """The layers to give the `fallback` precision (float or int16) so that the int8 model is
    within `budget` of float, and the per-layer table behind the choice (module docstring).
    The result's "nodes" (followers included) go to quantize_model via assignment_options."""
    if budget < 0:
        raise EdgecError(f"--accuracy-budget must be >= 0 (got {budget})")
    if fallback not in FALLBACKS:
        raise EdgecError(f"unknown fallback precision '{fallback}'; expected one of {', '.join(FALLBACKS)}")
    layers, followers = candidate_layers(model.graph, fallback)
    if not layers:
        raise EdgecError(f"the model has no int8 layers that can take {fallback} precision")
    evaluation = data.samples[-samples:]
    scorer = _Scorer(model, stats, evaluation, bias_correction, dict(quantize_options or {}), fallback)
    every = frozenset().union(*(layer.names for layer in layers)) | {f.name for f in followers}

    # 1. Each layer alone in int8 (the rest float): the noise it adds by itself.
    alone: dict[Layer, Figures] = {}
    for i, layer in enumerate(layers):
        alone[layer] = scorer.score(every - layer.names - _followers_of(layer, followers), SENSITIVITY_SAMPLES,
                                    fallback="float")
        if progress:
            progress("mixed-precision sensitivity", i + 1, len(layers))
    order = sorted(layers, key=lambda layer: alone[layer].sqnr_db)  # noisiest first

    def floats_for(chosen: list[Layer]) -> frozenset[str]:
        return with_followers(set().union(*(layer.names for layer in chosen)), followers)

    # 2. Greedy: move the noisiest layers to the fallback precision until the budget holds.
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
        steps.append({f"to_{fallback}": node_label(layer.head), **current.as_dict()})
        if progress:
            progress("mixed-precision search", len(chosen), len(order))
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
               "precision": fallback if layer in chosen else "int8"}
        if layer in chosen:
            row["why"] = (f"alone in int8 it leaves the output at {figs.sqnr_db:.1f} dB SQNR; with it in int8 "
                          f"the model is outside the budget")
        table.append(row)
    return {
        "scheme": f"int8 with {fallback} fallback" if fallback == "float" else "int8 with 16x8 layers",
        "fallback": fallback,
        "budget": budget,
        "unit": budget_unit(classifier),
        "evaluation_samples": len(evaluation),
        "baseline_int8": baseline.as_dict(),
        "result": current.as_dict(),
        "within_budget": current.loss() <= budget,
        "moved_layers": [node_label(layer.head) for layer in order if layer in chosen],
        "nodes": sorted(floats_for(chosen)),  # followers included, as the quantize pass takes them
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
