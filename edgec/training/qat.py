"""Quantization-aware training whose torch output is the deployed integer model's output.

    from edgec.training import qat
    qmodel = qat.prepare(model, target="arm64-int8", example_inputs=(x,))   # or weight_bits=4
    ...train qmodel with any loop...
    qat.freeze(qmodel)              # late in training: BatchNorm statistics and ranges stop moving
    art = edgec.compile(qmodel, example_inputs=(x,), target="arm64-int8")  # no calibration

`prepare` exports the float model once, runs the target's passes and asks the quantize pass
which tensors it will quantize (see qat_plan.py); the returned model is the module's FX trace
with a fake quantizer on the torch value of each of those tensors (one quantizer per set of
tensors sharing parameters) and each Conv/Linear replaced by a QuantizedLayer that folds its
BatchNorm (whitepaper section 3.2) and fake-quantizes weights per channel and the bias to int32.
Activation ranges follow an exponential moving average of batch min/max.

`edgec.compile` recognizes a prepared model: it exports the float module (whose parameters are
the ones trained) and quantizes it with `export_ranges(qmodel)` instead of calibrating.
Fake quantization uses the QDQ graph's exact arithmetic (qat_fake_quant.py), so in eval mode the
QAT model's output equals onnxruntime on the QDQ graph up to float summation order.
"""

from __future__ import annotations

import copy
import dataclasses
import operator
from typing import Any, Sequence

import numpy as np
import onnx_ir as ir
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from edgec.errors import EdgecError
from edgec.training.qat_modules import ActivationQuantizer, QuantizedLayer
from edgec.training.qat_plan import QuantizationPlan, match_values, plan_quantization

__all__ = ["QATModel", "QATDeployment", "prepare", "freeze", "export_ranges", "is_prepared", "deployment",
           "qdq_model"]


class QATModel(nn.Module):
    """A QAT-prepared model: train it like the original, then compile it.

    `float_module` is a copy of the model given to `prepare` that shares every parameter and
    BatchNorm buffer with this model, so it always holds the trained float weights that
    deployment exports.
    """

    def __init__(self, traced: fx.GraphModule, float_module: nn.Module, quantizers: list[ActivationQuantizer],
                 layers: list[QuantizedLayer], target: Any, weight_bits: int, node_weight_bits: dict[str, int],
                 example_inputs: tuple[torch.Tensor, ...]):
        super().__init__()
        self.traced = traced
        # Not registered as a child: its modules are already children of `traced`.
        object.__setattr__(self, "float_module", float_module)
        object.__setattr__(self, "quantizers", list(quantizers))
        object.__setattr__(self, "layers", list(layers))
        self.target = target  # edgec.targets.Target: its passes give the graph this model mirrors
        self.weight_bits = weight_bits
        self.node_weight_bits = dict(node_weight_bits)
        self.example_inputs = tuple(t.detach().clone() for t in example_inputs)

    def forward(self, *args: Any) -> Any:
        return self.traced(*args)


@dataclasses.dataclass
class QATDeployment:
    """What compile needs from a prepared model instead of calibration."""

    module: nn.Module  # the float model with the trained parameters (eval mode)
    ranges: dict[str, tuple[float, float]]  # ONNX tensor name -> (lo, hi)
    weight_bits: int
    node_weight_bits: dict[str, int]


def is_prepared(model: Any) -> bool:
    return isinstance(model, QATModel)


def prepare(model: nn.Module, target: str = "arm64-int8", example_inputs: Sequence | None = None, *,
            weight_bits: int | None = None, node_weight_bits: dict[str, int] | None = None,
            ema_decay: float = 0.99, devices: str | None = None) -> QATModel:
    """A QAT copy of `model` (left untouched) for an integer target.

    weight_bits: 8 or 4 (W4A8); defaults to the target's. node_weight_bits: per ONNX node name
    (as in the compile report's layers), for mixed precision. ema_decay: smoothing of the
    activation ranges per training step (0.99: about the last 100 steps).
    """
    from edgec.targets import load_registry

    tgt = load_registry(devices).target(target)
    if not tgt.is_integer or tgt.quantization is None:
        raise EdgecError(f"QAT needs an integer target; '{target}' is {tgt.precision}")
    bits = int(weight_bits or tgt.quantization.weight_bits)
    if bits not in (4, 8):
        raise EdgecError(f"weight_bits must be 8 or 4, got {bits}")
    if not isinstance(model, nn.Module) or isinstance(model, QATModel):
        raise EdgecError("qat.prepare takes a float torch.nn.Module (not an already prepared one)")
    if example_inputs is None:
        raise EdgecError("qat.prepare needs example_inputs=(x,) to export the model and learn its graph")
    inputs = tuple(torch.as_tensor(np.asarray(t)) if not isinstance(t, torch.Tensor) else t
                   for t in (example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)))

    float_module = copy.deepcopy(model).eval()
    graph_model = _export(float_module, inputs, tgt)
    plan = plan_quantization(graph_model)
    try:
        traced = fx.symbolic_trace(float_module)
    except Exception as exc:  # torch.fx raises many kinds; the user needs the first line
        raise EdgecError(f"QAT traces the model with torch.fx, which failed: {str(exc).splitlines()[0]}; "
                         "make forward free of data-dependent Python control flow") from None
    _decompose_like_the_exporter(traced)
    probes = [[torch.randn(t.shape, generator=torch.Generator().manual_seed(100 * seed + i)).to(t.dtype)
               if t.is_floating_point() else t for i, t in enumerate(inputs)] for seed in (1, 2)]
    matches = match_values(graph_model, plan, traced, probes)
    quantizers, layers = _rewrite(traced, plan, matches, bits, dict(node_weight_bits or {}), ema_decay)
    qmodel = QATModel(traced, float_module, quantizers, layers, tgt, bits, node_weight_bits or {}, inputs)
    return qmodel.train(model.training)


def _export(module: nn.Module, inputs: tuple, target) -> ir.Model:
    """The float graph that compile quantizes: the same export, input shapes and passes."""
    from edgec.frontends.torch_module import export_module
    from edgec.passes import fix_input_shapes, run_passes

    model = fix_input_shapes(export_module(module, inputs, f"QAT model {type(module).__name__}"), {})
    model, _ = run_passes(model, list(target.passes))
    return model


def _decompose_like_the_exporter(traced: fx.GraphModule) -> None:
    """Split torch ops that the exported graph computes in several quantized steps, so each step
    has a torch value to quantize: SiLU is Sigmoid (fixed output parameters) then Mul in ONNX."""
    graph = traced.graph
    for node in list(graph.nodes):
        is_silu = (node.op == "call_module" and isinstance(traced.get_submodule(node.target), nn.SiLU)) or \
                  (node.op == "call_function" and node.target is F.silu)
        if not is_silu:
            continue
        x = node.args[0]
        with graph.inserting_before(node):
            gate = graph.call_function(torch.sigmoid, (x,))
            product = graph.call_function(operator.mul, (x, gate))
        node.replace_all_uses_with(product)
        graph.erase_node(node)
    graph.lint()
    traced.recompile()


def _rewrite(traced: fx.GraphModule, plan: QuantizationPlan, matches: dict[str, fx.Node], bits: int,
             node_weight_bits: dict[str, int], ema_decay: float):
    """Put QuantizedLayers in place of the Conv/Linear(+BatchNorm) calls and quantizers after each
    quantized value."""
    graph = traced.graph
    quantizer_of: dict[str, ActivationQuantizer] = {}
    quantizers = []
    for index, (members, fixed) in enumerate(plan.groups):
        q = ActivationQuantizer(members, ema_decay=ema_decay, fixed=fixed)
        traced.add_submodule(f"qat_quantizers.{index}", q)
        quantizers.append(q)
        quantizer_of.update({m: q for m in members})
    paths = {q: f"qat_quantizers.{i}" for i, q in enumerate(quantizers)}

    layers, paths_used = [], set()
    for wn in plan.weight_nodes:
        layer_node, bn_node = _layer_call(traced, matches[wn.output], wn)
        bn = traced.get_submodule(bn_node.target) if bn_node is not None else None
        layer = QuantizedLayer(traced.get_submodule(layer_node.target), bn,
                               node_weight_bits.get(wn.name, bits), quantizer_of[wn.input], wn.name)
        path = f"qat_layers.{layer_node.target.replace('.', '_')}"
        if path in paths_used:
            path = f"{path}_{len(layers)}"  # a module called twice becomes two layers
        paths_used.add(path)
        traced.add_submodule(path, layer)
        layer_node.target = path
        if bn_node is not None:  # the BatchNorm call is now inside the layer
            bn_node.replace_all_uses_with(layer_node)
            graph.erase_node(bn_node)
            matches = {k: (layer_node if v is bn_node else v) for k, v in matches.items()}
        layers.append(layer)

    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    for name in plan.tensors:
        node = matches[name]
        where = placeholders[-1] if node.op == "placeholder" else node
        with graph.inserting_after(where):
            qnode = graph.call_module(paths[quantizer_of[name]], (node,))
        node.replace_all_uses_with(qnode, delete_user_cb=lambda user: user is not qnode)
    graph.lint()
    traced.recompile()
    return quantizers, layers


_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _layer_call(traced: fx.GraphModule, node: fx.Node, wn) -> tuple[fx.Node, fx.Node | None]:
    """The Conv/Linear call computing ONNX node `wn`'s output, and the BatchNorm call folded into it.

    A Conv/Linear whose only reader is a BatchNorm always has it folded in the exported graph
    (by the exporter, or by fold_batchnorm), so the pair is one layer whichever of the two the
    values matched: a BatchNorm near identity (fresh statistics) matches either.
    """
    def module(n: fx.Node) -> nn.Module | None:
        return traced.get_submodule(n.target) if n.op == "call_module" else None

    if isinstance(module(node), _BATCHNORMS):
        producer = node.args[0] if node.args else None
        if isinstance(producer, fx.Node) and isinstance(module(producer), _LAYERS) and len(producer.users) == 1:
            return producer, node
    elif isinstance(module(node), _LAYERS):
        users = list(node.users)
        if len(users) == 1 and isinstance(module(users[0]), _BATCHNORMS):
            return node, users[0]
        return node, None
    raise EdgecError(
        f"{wn.op_type} '{wn.name}' computes torch value '{node.name}' ({node.op} {node.target}), which is not "
        "an nn.Conv/nn.Linear module call (optionally followed by its BatchNorm); QAT quantizes weights only "
        "of those modules")


def freeze(qmodel: QATModel, *, batchnorm: bool = True, ranges: bool = True) -> QATModel:
    """Late in training: BatchNorm switches to (and stops updating) its running statistics, and the
    activation ranges stop following the data (whitepaper: freeze BN statistics, then ranges)."""
    _check(qmodel)
    if batchnorm:
        for layer in qmodel.layers:
            layer.bn_frozen = True
    if ranges:
        for q in qmodel.quantizers:
            q.observing = False
    return qmodel


def export_ranges(qmodel: QATModel) -> dict[str, tuple[float, float]]:
    """{ONNX tensor name: (lo, hi)} for every tensor the quantize pass quantizes."""
    _check(qmodel)
    return {name: q.range() for q in qmodel.quantizers for name in q.tensors}


def deployment(qmodel: QATModel) -> QATDeployment:
    _check(qmodel)
    return QATDeployment(qmodel.float_module.eval(), export_ranges(qmodel), qmodel.weight_bits,
                         dict(qmodel.node_weight_bits))


def qdq_model(qmodel: QATModel, example_inputs: Sequence | None = None) -> ir.Model:
    """The QDQ graph compile would build from `qmodel`: onnxruntime runs it as the int8 reference."""
    from edgec.passes.quantize import QuantizeOptions, QuantizeQDQ

    dep = deployment(qmodel)
    inputs = tuple(example_inputs) if example_inputs is not None else qmodel.example_inputs
    model = _export(dep.module, inputs, qmodel.target)
    return QuantizeQDQ(QuantizeOptions(ranges=dep.ranges, weight_bits=dep.weight_bits,
                                       node_weight_bits=dep.node_weight_bits))(model).model


def _check(qmodel: Any) -> None:
    if not isinstance(qmodel, QATModel):
        raise EdgecError(f"expected a model from qat.prepare, got {type(qmodel).__name__}")
