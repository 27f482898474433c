"""Layer-by-layer faithfulness of the int8 TVM lowering, read from a probe build
(edgec/lower/tvm/probe.py): a correct lowering is within 1 LSB on every layer; a wrong zero point
in the requantize kernel fails edgec.compile's verification naming a layer (the end-to-end
check alone cannot tell a wrong kernel from rounding ties compounded through depth)."""

from __future__ import annotations

import numpy as np
import pytest

import edgec
import edgec.lower.tvm.qdq as qdq_rewrite
from edgec import zoo
from edgec.errors import VerificationError
from edgec.faithfulness import faithfulness_failures, layer_agreement
from edgec.lower.tvm.probe import build_probe, probe_model
from edgec.quantization import quantize_model
from edgec.runtimes.child import ChildRuntimes
from edgec.targets import get_target
from tflite_cases import residual_classifier


def _model():
    return residual_classifier().model()


@pytest.fixture(scope="module")
def quantized():
    rng = np.random.default_rng(0)
    samples = [[rng.standard_normal((1, 3, 10, 10)).astype(np.float32)] for _ in range(10)]
    qdq, _ = quantize_model(_model(), samples[:8])
    return qdq, samples[8:]


def _layers(qdq, samples, tmp_path):
    path, tensor_map = build_probe(qdq, get_target("x86_64-int8"), tmp_path)
    with ChildRuntimes() as child:
        probe = child.open(path)
        return layer_agreement(qdq, tensor_map, samples,
                               lambda batch, tensors: [{t: o[t] for t in tensors} for o in probe.run_all(batch)])


def _shifted_zero_point(monkeypatch, shift=3):
    real = qdq_rewrite.requantize

    def faulty(*args, zero_point, **kwargs):
        return real(*args, zero_point=zero_point + shift, **kwargs)

    monkeypatch.setattr(qdq_rewrite, "requantize", faulty)


def test_probe_outputs_every_quantized_value(quantized):
    qdq, _ = quantized
    probe, tensor_map = probe_model(qdq)
    outputs = [v.name for v in probe.graph.outputs]
    assert outputs[:len(qdq.graph.outputs)] == [v.name for v in qdq.graph.outputs]
    assert {"r", "a", "s"} <= set(tensor_map)
    for name, (index, perm) in tensor_map.items():
        assert outputs[index] == f"{name}/q" and perm == []


def test_correct_lowering_is_faithful_layer_by_layer(quantized, tmp_path):
    qdq, samples = quantized
    layers = _layers(qdq, samples, tmp_path)
    assert faithfulness_failures(layers) == []
    assert {"r", "a", "y"} <= set(layers)  # conv (fused relu), conv, fully connected compared
    assert min(v["agreement"] for v in layers.values()) >= 0.99


def test_compile_with_a_wrong_tvm_kernel_fails_naming_a_layer(tmp_path, monkeypatch):
    _shifted_zero_point(monkeypatch)
    z = zoo.build("mlp")
    calibration = np.random.default_rng(0).standard_normal((16, *z.example_inputs[0].shape[1:])).astype(np.float32)
    with pytest.raises(VerificationError) as caught:
        edgec.compile(z.module, example_inputs=z.example_inputs, target="x86_64-int8", out_dir=tmp_path,
                      name="mlp", formats=["tvm"], calibration=calibration)
    assert "tvm: layer '" in str(caught.value)
    assert not any(tmp_path.glob("*.so"))
