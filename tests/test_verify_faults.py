"""Through edgec.compile: a fault injected into the int8 TFLite lowering fails verification,
naming the layer; the same compile without the fault passes."""

from __future__ import annotations

import numpy as np
import pytest

import edgec
import edgec.lower.tflite as tflite
from edgec import zoo
from edgec.errors import VerificationError


def _compile(tmp_path):
    z = zoo.build("mlp")
    calibration = np.random.default_rng(0).standard_normal((16, *z.example_inputs[0].shape[1:])).astype(np.float32)
    return edgec.compile(z.module, example_inputs=z.example_inputs, target="x86_64-int8", out_dir=tmp_path,
                         name="mlp", formats=["tflite"], calibration=calibration)


def test_wrong_zero_point_in_the_lowering_fails_verification_at_its_layer(tmp_path, monkeypatch):
    real = tflite.build_flatbuffer
    faulty = {}

    def with_fault(*args, **kwargs):
        data, ctx, fusions = real(*args, **kwargs)
        graph = ctx.graph
        fc = next(op for op in graph.operators if graph.op_name(op) == "FULLY_CONNECTED")
        out = graph.tensors[fc.outputs[0]]
        out.quantization.zeroPoint[0] += 4  # the kernel writes with a zero point the graph does not have
        faulty["layer"] = out.name
        return graph.serialize(), ctx, fusions

    monkeypatch.setattr(tflite, "build_flatbuffer", with_fault)
    with pytest.raises(VerificationError) as caught:
        _compile(tmp_path)
    assert f"layer '{faulty['layer']}'" in str(caught.value)
    assert "does not compute what the quantized graph says" in str(caught.value)
    assert not any(tmp_path.glob("*.tflite"))


@pytest.mark.slow  # the unfaulted int8 compile of the zoo is covered elsewhere; this checks the report
def test_correct_int8_compile_reports_layer_faithfulness(tmp_path):
    art = _compile(tmp_path)
    entry = art.report["verification"]["artifacts"]["tflite"]
    assert entry["faithfulness"]["layers"] >= 3 and entry["faithfulness"]["worst_agreement"] >= 0.99
    accuracy = entry["accuracy"]  # what int8 costs vs float, reported; no budget asked for
    assert accuracy["enforced"] is False and accuracy["outputs"][0]["sqnr_db"] > 15
    assert accuracy["outputs"][0]["sqnr_db"] == entry["vs_float"]["outputs"][0]["sqnr_db"]
