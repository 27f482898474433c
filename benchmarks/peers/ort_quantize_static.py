"""onnxruntime's own post-training quantizer, configured as the issue asks: QDQ, per channel,
int8 weights and activations, MinMax calibration, after its recommended pre-processing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)


class _Reader(CalibrationDataReader):
    def __init__(self, input_name: str, samples: np.ndarray, shape: tuple[int, ...]):
        self._items = iter([{input_name: s.reshape(shape).astype(np.float32)} for s in samples])

    def get_next(self):
        return next(self._items, None)


def quantize_with_onnxruntime(float_onnx: Path, samples: np.ndarray, out: Path) -> Path:
    import onnx

    model = onnx.load(str(float_onnx))
    inp = model.graph.input[0]
    shape = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)
    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(float_onnx), str(pre))
    quantize_static(
        str(pre), str(out), _Reader(inp.name, samples, shape),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    pre.unlink(missing_ok=True)
    return out
