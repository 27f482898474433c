"""QAT (edgec.training.qat): the prepared torch model computes what the deployed integer model computes.

The reference is onnxruntime on the QDQ graph that compile builds from the prepared model (the
graph every integer lowering must match within 1 LSB); the QAT model's output must equal it
within one output quantization step on at least 99% of elements, after training steps with live
BatchNorm statistics, a freeze, and more steps.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

import edgec
from edgec import zoo
from edgec.datasets import mnist
from edgec.errors import EdgecError
from edgec.ir import const_array
from edgec.quantization.scheme import activation_qparams
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.training import qat
from edgec.training.qat_fake_quant import fake_quantize_weight
from edgec.training.qat_modules import ActivationQuantizer

SMALL = {
    "mlp": dict(hidden=64),
    "mobilenet_v2": dict(in_channels=1, resolution=28, num_classes=10, width=0.35),
    "resnet18": dict(in_channels=1, resolution=28, num_classes=10, width=0.25),
}


@functools.lru_cache(maxsize=None)
def _mnist(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = mnist(split)
    return torch.from_numpy(x), torch.from_numpy(y)


def _images(input_shape, split: str, start: int, count: int) -> torch.Tensor:
    """MNIST images shaped for the model (flattened for the MLP)."""
    x = _mnist(split)[0][start:start + count]
    return x.reshape((count,) + tuple(input_shape[1:]))


def _train(qmodel, input_shape, steps: int, start: int, lr: float = 0.005, batch: int = 16) -> None:
    """A few SGD steps on MNIST: enough to move weights, BatchNorm statistics and ranges."""
    opt = torch.optim.SGD(qmodel.parameters(), lr=lr, momentum=0.9)
    qmodel.train()
    for i in range(steps):
        first = start + i * batch
        x = _images(input_shape, "train", first, batch)
        loss = torch.nn.functional.cross_entropy(qmodel(x), _mnist("train")[1][first:first + batch])
        opt.zero_grad()
        loss.backward()
        opt.step()


@functools.lru_cache(maxsize=None)  # shared by tests that only read it: each takes seconds to build
def _trained_qat(name: str, bits: int):
    zm = zoo.build(name, **SMALL[name])
    # ema_decay 0.5: ranges keep up with weights that move fast in a few steps at this learning rate.
    qmodel = qat.prepare(zm.module, "arm64-int8", zm.example_inputs, weight_bits=bits, ema_decay=0.5)
    _train(qmodel, zm.input_shape, steps=3, start=0)  # BatchNorm folded with batch statistics
    qat.freeze(qmodel)
    _train(qmodel, zm.input_shape, steps=2, start=48)  # running statistics, fixed ranges
    return zm, qmodel.eval()


@pytest.mark.parametrize("name,bits", [("mlp", 8), ("mobilenet_v2", 8), ("resnet18", 8),
                                       ("mobilenet_v2", 4), ("resnet18", 4)])
def test_qat_output_equals_qdq_reference(name, bits):
    zm, qmodel = _trained_qat(name, bits)
    qdq = qat.qdq_model(qmodel)
    runtime = OnnxRuntime.from_ir(qdq, optimize=False)
    xs = _images(zm.input_shape, "test", 0, 48)
    # One sample at a time, as the exported graph runs: a batched conv sums in another order, and
    # where that moves a value across a rounding boundary the difference propagates (measured on
    # resnet18: 9 of 480 outputs moved by over half a step between batch 48 and batch 1).
    with torch.no_grad():
        ours = np.concatenate([qmodel(xs[i:i + 1]).numpy() for i in range(len(xs))])
    ref = np.concatenate([runtime.run([xs[i:i + 1].numpy()])[0] for i in range(len(xs))])
    step = float(activation_qparams(*qat.export_ranges(qmodel)[qdq.graph.outputs[0].name]).scale)
    within = np.mean(np.abs(ours - ref) <= step * 1.0001)
    assert within >= 0.99, f"{name} W{bits}: only {within:.2%} of outputs within one step of the QDQ reference"
    # Not vacuous: the outputs vary with the input over many quantization steps.
    assert np.ptp(ref, axis=0).mean() > 10 * step


def test_plan_is_the_quantize_pass_plan():
    """Every tensor the pass quantizes has a QAT range, fused activations have none before them,
    and every layer's integer weights and bias are bitwise the QDQ graph's."""
    zm, qmodel = _trained_qat("mobilenet_v2", 8)
    qdq = qat.qdq_model(qmodel)
    quantized = {n.inputs[0].name for n in qdq.graph if n.op_type == "QuantizeLinear"}
    ranges = qat.export_ranges(qmodel)
    assert set(ranges) == {name.removesuffix("/float") for name in quantized}
    nodes = {n.name: n for n in qdq.graph}
    for layer in qmodel.layers:
        node = nodes[layer.onnx_node]
        weight, bias = layer.folded()
        weight_q, scales = fake_quantize_weight(weight.detach(), layer.weight_bits)
        dq_w = node.inputs[1].producer()
        onnx_w = const_array(dq_w.inputs[0]).astype(np.float32) * const_array(dq_w.inputs[1]).reshape(
            (-1,) + (1,) * (weight.dim() - 1))
        assert np.array_equal(weight_q.numpy(), onnx_w), layer.onnx_node
        dq_b = node.inputs[2].producer()
        onnx_b = const_array(dq_b.inputs[0]).astype(np.float32) * const_array(dq_b.inputs[1])
        assert np.array_equal(layer._quantized_bias(bias.detach(), scales).detach().numpy(), onnx_b), layer.onnx_node
    # 35 ReLU6 fused into their convs: quantizers sit after the ReLU6 only.
    calls = [n for n in qmodel.traced.graph.nodes if n.op == "call_module" and n.target.startswith("qat_quantizers")]
    assert len(calls) == len(ranges)


def test_ema_ranges_move_toward_the_data():
    q = ActivationQuantizer(["t"], ema_decay=0.9).train()
    q(torch.linspace(-1, 1, 100))
    assert q.range() == (-1.0, 1.0)  # the first batch sets the range
    previous = q.range()
    for _ in range(20):
        q(torch.linspace(-3, 5, 100))
        lo, hi = q.range()
        assert -3 <= lo < previous[0] and previous[1] < hi <= 5
        previous = (lo, hi)
    assert q.range() == pytest.approx((-3 + 2 * 0.9 ** 20, 5 - 4 * 0.9 ** 20), rel=1e-5)
    q.eval()
    q(torch.linspace(-9, 9, 10))
    assert q.range() == previous  # evaluation never moves ranges


def test_freeze_stops_batchnorm_and_range_updates():
    zm = zoo.build("resnet18", **SMALL["resnet18"])
    qmodel = qat.prepare(zm.module, "arm64-int8", zm.example_inputs)
    bn = qmodel.layers[0].bn
    _train(qmodel, zm.input_shape, steps=2, start=0)
    ranges, stats = qat.export_ranges(qmodel), bn.running_mean.clone()
    _train(qmodel, zm.input_shape, steps=1, start=32)
    assert qat.export_ranges(qmodel) != ranges and not torch.equal(bn.running_mean, stats)

    qat.freeze(qmodel)
    ranges, stats, weight = qat.export_ranges(qmodel), bn.running_mean.clone(), bn.weight.detach().clone()
    _train(qmodel, zm.input_shape, steps=2, start=48)
    assert qat.export_ranges(qmodel) == ranges
    assert torch.equal(bn.running_mean, stats)
    assert not torch.equal(bn.weight, weight)  # still training


def test_live_batchnorm_normalizes_with_batch_statistics():
    """Before freeze, a folded conv's output is batch-normalized (the whitepaper's correction):
    per channel, its batch mean is beta and its batch std is gamma."""
    zm = zoo.build("resnet18", **SMALL["resnet18"])
    qmodel = qat.prepare(zm.module, "arm64-int8", zm.example_inputs).train()
    layer = qmodel.layers[0]
    with torch.no_grad():
        layer.bn.weight.uniform_(0.5, 2.0)
        layer.bn.bias.uniform_(-1.0, 1.0)
        x = torch.randn(16, 1, 28, 28) * 3 + 1
        qmodel.quantizers[0].observe(x)
        y = layer(qmodel.quantizers[0](x))
    mean = y.mean(dim=(0, 2, 3))
    std = y.var(dim=(0, 2, 3), unbiased=False).add(layer.bn.eps).sqrt()
    assert torch.allclose(mean, layer.bn.bias, atol=1e-4)
    assert torch.allclose(std, layer.bn.weight.abs(), rtol=1e-3)


def test_compile_takes_ranges_from_qat(tmp_path):
    zm, qmodel = _trained_qat("mlp", 8)
    art = edgec.compile(qmodel, example_inputs=zm.example_inputs, target="x86_64-int8", out_dir=tmp_path,
                        formats=("tflite",))
    quant = art.report["quantization"]
    assert quant["ranges_from"] == "QAT" and quant["calibration"]["source"] == "ranges from QAT"
    for name, (lo, hi) in qat.export_ranges(qmodel).items():
        assert quant["activations"][name]["scale"] == pytest.approx(float(activation_qparams(lo, hi).scale))
    tflite = art.report["verification"]["artifacts"]["tflite"]
    assert min(tflite["vs_qdq"]["lsb_agreement"]) >= 0.99


def test_compile_refuses_other_weight_bits(tmp_path):
    zm, qmodel = _trained_qat("mlp", 4)
    with pytest.raises(EdgecError, match="4-bit weights"):
        edgec.compile(qmodel, example_inputs=zm.example_inputs, target="x86_64-int8", out_dir=tmp_path)


def test_ranges_must_be_observed_first():
    zm = zoo.build("mlp", **SMALL["mlp"])
    qmodel = qat.prepare(zm.module, "arm64-int8", zm.example_inputs).eval()
    with pytest.raises(EdgecError, match="no range yet"):
        qmodel(zm.example_inputs[0])
    with pytest.raises(EdgecError, match="integer target"):
        qat.prepare(zm.module, "arm64-fp32", zm.example_inputs)


class _Branches(nn.Module):
    """Max pooling (shares its input's parameters), concatenation (one set for all its inputs and
    its output), a Linear without BatchNorm and a Sigmoid (TFLite's fixed 1/256 output parameters)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.left = nn.Conv2d(4, 4, 1)
        self.right = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(8 * 3 * 3, 5)

    def forward(self, x):
        y = self.pool(self.stem(x))
        y = torch.cat([self.left(y), torch.relu(self.right(y))], dim=1)
        return torch.sigmoid(self.head(torch.flatten(self.pool(y), 1)))


def test_sharing_and_fixed_parameters_follow_the_quantize_pass():
    torch.manual_seed(0)
    example = torch.randn(1, 1, 14, 14)
    qmodel = qat.prepare(_Branches(), "arm64-int8", (example,))
    _train_on(qmodel, torch.randn(32, 1, 14, 14), torch.rand(32, 5))
    qat.freeze(qmodel)
    qmodel.eval()
    by_size = sorted(len(q.tensors) for q in qmodel.quantizers)
    assert by_size[-1] >= 4  # both branches, the concatenation, its pool and the flatten share one set
    sigmoid = [q for q in qmodel.quantizers if q.fixed is not None]
    assert len(sigmoid) == 1 and sigmoid[0].fixed == (1 / 256, -128)
    assert sum(layer.bn is not None for layer in qmodel.layers) == 1 and len(qmodel.layers) == 4

    runtime = OnnxRuntime.from_ir(qat.qdq_model(qmodel), optimize=False)
    xs = torch.randn(32, 1, 14, 14, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = np.concatenate([qmodel(xs[i:i + 1]).numpy() for i in range(len(xs))])
    ref = np.concatenate([runtime.run([xs[i:i + 1].numpy()])[0] for i in range(len(xs))])
    assert np.mean(np.abs(ours - ref) <= 1 / 256 * 1.0001) >= 0.99
    assert np.ptp(ref, axis=0).mean() > 10 / 256


def _train_on(qmodel, x, target, steps: int = 4) -> None:
    opt = torch.optim.SGD(qmodel.parameters(), lr=0.05, momentum=0.9)
    qmodel.train()
    for i in range(steps):
        loss = torch.nn.functional.mse_loss(qmodel(x[i * 8:(i + 1) * 8]), target[i * 8:(i + 1) * 8])
        opt.zero_grad()
        loss.backward()
        opt.step()
