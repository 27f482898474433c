"""Post-training quantization: calibrate on onnxruntime, then rewrite the IR into QDQ form.

    qdq_model, info = quantize_model(float_model, calibration_source, method="minmax")

The QDQ model is what the integer lowerings take, and what onnxruntime runs as the int8
reference. See scheme.py for the integer scheme and passes/quantize.py for the graph form.
"""

from __future__ import annotations

from typing import Any

import onnx_ir as ir

from edgec.ir import clone
from edgec.quantization.calibration import CalibrationSet, Progress, Statistics, collect_statistics, load_calibration


def quantized_tensor_names(model: ir.Model, exclude_nodes: frozenset[str] = frozenset()) -> list[str]:
    """The activations the quantize pass gives parameters to (each needs a calibrated range)."""
    from edgec.passes.quantize import QuantizeOptions, QuantizeQDQ, integer_nodes

    ints, _ = integer_nodes(model.graph, frozenset(exclude_nodes))
    qpass = QuantizeQDQ(QuantizeOptions(ranges={}))
    return qpass._quantized_tensors(model.graph, ints, qpass._fused_pairs(model.graph, ints))


def quantize_model(model: ir.Model, calibration: Any, *, method: str = "minmax", percentile: float = 99.99,
                   weight_bits: int = 8, node_weight_bits: dict[str, int] | None = None,
                   exclude_nodes: frozenset[str] = frozenset(), int16_nodes: frozenset[str] = frozenset(),
                   bias_correction: bool = True,
                   preprocess: str | None = None, limit: int | None = None,
                   progress: Progress | None = None,
                   statistics: Statistics | None = None) -> tuple[ir.Model, dict]:
    """A QDQ copy of `model` (the float model is left untouched) and what was done.

    `statistics` reuses an earlier calibration of the same graph (e.g. to compare options).
    """
    from edgec.passes.quantize import QuantizeOptions, QuantizeQDQ

    data = calibration if isinstance(calibration, CalibrationSet) else \
        load_calibration(calibration, model, preprocess=preprocess, limit=limit)
    needed = quantized_tensor_names(model, exclude_nodes)
    stats = statistics or collect_statistics(model, data, method=method, percentile=percentile, progress=progress,
                                             tensors=needed)
    missing = [n for n in needed if n not in stats.ranges]
    if missing:
        # Statistics of a subset (e.g. calibrated for other excluded nodes): calibrate the rest.
        stats = stats.merged(collect_statistics(model, data, method=stats.method, percentile=percentile,
                                                progress=progress, tensors=missing))
    qdq = clone(model)
    qpass = QuantizeQDQ(QuantizeOptions(ranges=stats.ranges, weight_bits=weight_bits,
                                        node_weight_bits=dict(node_weight_bits or {}),
                                        exclude_nodes=frozenset(exclude_nodes),
                                        int16_nodes=frozenset(int16_nodes),
                                        channel_means=stats.channel_means if bias_correction else None))
    qdq = qpass(qdq).model
    info = {"calibration": {"source": data.source, "samples": len(data), "method": method,
                            "random": data.is_random},
            **qpass.details,
            "ranges": stats.ranges,
            "statistics": stats}
    return qdq, info
