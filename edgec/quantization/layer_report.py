"""Per-layer figures for the compile report: how far each quantized tensor drifts from float.

Both graphs run on the same inputs with every tensor exposed; each quantized activation of the
QDQ graph (its DequantizeLinear output) is compared with the same tensor of the float graph.
The error is cumulative: a layer's SQNR includes what the layers before it lost.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.quantization.calibration import exposing_session
from edgec.verify import sqnr_db


def _dq_sources(qdq: ir.Model) -> dict[str, str]:
    """QDQ tensor name -> the float tensor name it stands for."""
    pairs = {}
    for node in qdq.graph:
        if node.op_type != "DequantizeLinear":
            continue
        q = node.inputs[0].producer()
        if q is None or q.op_type != "QuantizeLinear":
            continue  # a weight's DQ
        source = q.inputs[0]
        while (dq := source.producer()) is not None and dq.op_type == "DequantizeLinear" and \
                (q_before := dq.inputs[0].producer()) is not None and q_before.op_type == "QuantizeLinear":
            source = q_before.inputs[0]  # a requantization (int8 <-> int16 reader) stands for the same tensor
        src = source.name
        pairs[node.outputs[0].name] = src[: -len("/float")] if src.endswith("/float") else src
    return pairs


def layer_sqnr(float_model: ir.Model, qdq_model: ir.Model, samples: list[list[np.ndarray]],
               ranges: dict[str, tuple[float, float]] | None = None) -> list[dict]:
    pairs = _dq_sources(qdq_model)
    fsess, fnames = exposing_session(float_model, sorted(set(pairs.values())))
    qsess, qnames = exposing_session(qdq_model, sorted(pairs))
    fin = [i.name for i in fsess.get_inputs()]
    qin = [i.name for i in qsess.get_inputs()]
    acc: dict[str, list] = {q: [[], []] for q in pairs}
    for sample in samples:
        fvals = dict(zip(fnames, fsess.run(None, dict(zip(fin, sample)))))
        fvals.update(zip(fin, sample))
        qvals = dict(zip(qnames, qsess.run(None, dict(zip(qin, sample)))))
        for q, f in pairs.items():
            if q in qvals and f in fvals:
                acc[q][0].append(np.asarray(qvals[q]).ravel())
                acc[q][1].append(np.asarray(fvals[f]).ravel())
    rows = []
    for q, (qs, fs) in acc.items():
        if not qs:
            continue
        a, r = np.concatenate(qs), np.concatenate(fs)
        row = {"tensor": pairs[q], "sqnr_db": sqnr_db(a, r), "max_abs_error": float(np.max(np.abs(a - r)))}
        if ranges and pairs[q] in ranges:
            lo, hi = ranges[pairs[q]]
            row["range"] = [lo, hi]
            row["clipped_fraction"] = float(np.mean((r < lo) | (r > hi)))
        rows.append(row)
    return rows
