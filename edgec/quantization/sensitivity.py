"""Per-layer sensitivity to 4-bit weights, and a greedy mixed-precision choice under a budget.

Sensitivity of a layer: the output error when that layer alone has int4 weights and every other
layer int8 (activations int8 throughout), measured as output SQNR vs the float model and, for
classifiers, top-1 agreement with it, on the calibration samples. The layers that lose least go
to int4 first; a layer is kept at int4 only while the whole model stays within the budget.
The first and last weight layers stay int8 by default (the whitepaper's and common practice:
they see raw inputs / produce the logits, and hold few of the weights).
"""

from __future__ import annotations

import dataclasses

import onnx_ir as ir

from edgec.errors import EdgecError
from edgec.ir import const_array, node_label
from edgec.quantization.calibration import CalibrationSet, Statistics
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.verify import compare_outputs

WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


@dataclasses.dataclass
class LayerSensitivity:
    node: str
    op: str
    parameters: int
    sqnr_db: float  # output SQNR vs float with this layer alone at int4
    top1_agreement: float | None
    sqnr_drop_db: float  # vs every layer at int8

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def weight_layers(model: ir.Model) -> list[ir.Node]:
    return [n for n in model.graph if n.op_type in WEIGHT_OPS and len(n.inputs) > 1
            and (w := const_array(n.inputs[1])) is not None and w.ndim >= 2]


class _Evaluator:
    """QDQ variants of one float graph, scored against its float outputs on fixed samples."""

    def __init__(self, model: ir.Model, data: CalibrationSet, stats: Statistics, samples: int):
        self.model, self.stats = model, stats
        self.samples = data.samples[-samples:]
        ref = OnnxRuntime.from_ir(model, optimize=False)
        self.reference = [ref.run(x) for x in self.samples]
        self.names = [v.name for v in model.graph.outputs]

    def score(self, node_bits: dict[str, int]) -> tuple[float, float | None]:
        from edgec.quantization import quantize_model

        qdq, _ = quantize_model(self.model, CalibrationSet(self.samples, "evaluation"), statistics=self.stats,
                                node_weight_bits=node_bits, bias_correction=True)
        rt = OnnxRuntime.from_ir(qdq, optimize=False)
        figs = compare_outputs([rt.run(x) for x in self.samples], self.reference, self.names)
        return figs["sqnr_db"], figs["top1_agreement"]


def sensitivity(model: ir.Model, data: CalibrationSet, stats: Statistics, samples: int = 32,
                progress=None, evaluator: _Evaluator | None = None) -> tuple[dict, list[LayerSensitivity]]:
    """The all-int8 baseline and every weight layer's figures, most sensitive first."""
    ev = evaluator or _Evaluator(model, data, stats, samples)
    base_sqnr, base_top1 = ev.score({})
    layers = weight_layers(model)
    rows = []
    for i, node in enumerate(layers):
        sqnr, top1 = ev.score({node.name: 4})
        rows.append(LayerSensitivity(node_label(node), node.op_type, int(const_array(node.inputs[1]).size),
                                     sqnr, top1, base_sqnr - sqnr))
        if progress:
            progress("sensitivity", i + 1, len(layers))
    rows.sort(key=lambda r: r.sqnr_drop_db, reverse=True)
    return {"sqnr_db": base_sqnr, "top1_agreement": base_top1}, rows


def choose_int4_layers(model: ir.Model, data: CalibrationSet, stats: Statistics, budget: float | None,
                       keep_ends_int8: bool = True, samples: int = 32, progress=None) -> dict:
    """node name -> weight bits (4 or 8), and the table behind the choice.

    budget None: every weight layer but the first and last at int4 (plain W4A8).
    budget B: greedy, least sensitive first; B is the allowed loss in top-1 agreement with the
    float model, in percentage points, for classifiers, else in dB of output SQNR, relative
    to the all-int8 model.
    """
    layers = weight_layers(model)
    if not layers:
        raise EdgecError("the model has no Conv/Gemm/MatMul weights to quantize to int4")
    names = [n.name for n in layers]
    pinned = {names[0], names[-1]} if keep_ends_int8 and len(names) > 2 else set()
    if budget is None:
        bits = {n: (8 if n in pinned else 4) for n in names}
        return {"bits": bits, "budget": None, "table": None, "int4_layers": sum(b == 4 for b in bits.values())}
    ev = _Evaluator(model, data, stats, samples)
    base, table = sensitivity(model, data, stats, samples, progress, evaluator=ev)
    by_label = {node_label(n): n.name for n in layers}
    chosen: dict[str, int] = {}
    decisions = []
    for row in sorted(table, key=lambda r: r.sqnr_drop_db):
        name = by_label[row.node]
        if name in pinned:
            decisions.append({"node": row.node, "bits": 8, "why": "first/last layer"})
            continue
        trial = {**chosen, name: 4}
        sqnr, top1 = ev.score(trial)
        if base["top1_agreement"] is not None:
            loss, unit = 100.0 * (base["top1_agreement"] - top1), "points top-1 agreement"
        else:
            loss, unit = base["sqnr_db"] - sqnr, "dB SQNR"
        if loss <= budget:
            chosen = trial
            decisions.append({"node": row.node, "bits": 4, "loss": loss})
        else:
            decisions.append({"node": row.node, "bits": 8, "why": f"would lose {loss:.2f} {unit} > {budget}"})
    bits = {n: chosen.get(n, 8) for n in names}
    return {"bits": bits, "budget": budget, "baseline": base, "table": [r.as_dict() for r in table],
            "decisions": decisions, "int4_layers": sum(b == 4 for b in bits.values())}
