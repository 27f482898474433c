"""Is the lowering faithful? Each int8 layer of an artifact against the QDQ reference, fed the
artifact's own input to that layer.

End to end, a correct int8 artifact can drift from onnxruntime's QDQ graph: integer kernels
and onnxruntime's float arithmetic round an exact .5 tie apart now and then, and in a deep
network one such LSB grows through the layers that follow (MobileNet v3: 93-97% of outputs
within 1 LSB, every layer right). Layer by layer it cannot: every QuantizeLinear of the QDQ
graph becomes a cut, its consumers read the artifact's own int8 tensor for that value, and
onnxruntime computes each quantized value from those inputs. A faithful lowering is then
within 1 LSB on (nearly) every element of every layer; a wrong scale, a wrong zero point or a
transposed weight puts that layer off by many.

The artifact's tensors come from its own file run by LiteRT's builtin kernels with every
tensor kept (edgec.runtimes.litert.intermediate_tensors, in the verification child process);
the lowering report's `tensor_map` says which tensor holds which ONNX value, in what layout.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import onnx_ir as ir

from edgec.ir import clone
from edgec.runtimes.onnxrt import OnnxRuntime

# A layer passes when this fraction of its elements is within 1 LSB of the reference (a rare
# tie inside the layer itself is still possible; a wrong parameter moves most elements).
MIN_LAYER_AGREEMENT = 0.99


def _cut_at_quantize(qdq: ir.Model, names: set[str]) -> tuple[ir.Model, list[str]]:
    """A copy of `qdq` where each QuantizeLinear of a value in `names` is an output and its
    consumers read a new int8 input `<value>/fed` instead."""
    cut = clone(qdq)
    computed = []
    for q in [n for n in cut.graph if n.op_type == "QuantizeLinear"]:
        produced = q.outputs[0]
        name = produced.name.removesuffix("/q")
        if name not in names or produced.is_graph_output():
            continue
        # int8, or int16 for a 16x8 layer: the fed value has the Q's own integer type.
        fed = ir.Value(name=f"{name}/fed", shape=produced.shape,
                       type=ir.TensorType(produced.dtype or ir.DataType.INT8))
        for user, index in list(produced.uses()):
            user.replace_input_with(index, fed)
        cut.graph.inputs.append(fed)
        cut.graph.outputs.append(produced)
        computed.append(name)
    return cut, computed


def layer_agreement(qdq: ir.Model, tensor_map: dict[str, list], samples: Sequence[Sequence[np.ndarray]],
                    intermediates: Callable[[Sequence[Sequence[np.ndarray]], list[int]], list[dict]]
                    ) -> dict[str, dict]:
    """Per quantized value: {"agreement": fraction within 1 LSB, "max_lsb": largest difference}
    over `samples`. `intermediates(samples, tensor indices)` returns the artifact's tensors."""
    cut, computed = _cut_at_quantize(qdq, set(tensor_map))
    if not computed or not samples:
        return {}
    indices = sorted({int(tensor_map[n][0]) for n in computed})
    got = intermediates(samples, indices)
    runtime = OnnxRuntime.from_ir(cut, optimize=False)
    input_names = [v.name for v in cut.graph.inputs]
    first = len(qdq.graph.outputs)
    within = {n: 0 for n in computed}
    total = {n: 0 for n in computed}
    worst = {n: 0 for n in computed}
    for sample, tensors in zip(samples, got):
        held = {}
        for name in computed:
            index, perm = tensor_map[name]
            held[name] = np.transpose(tensors[int(index)], np.argsort(perm)) if perm else tensors[int(index)]
        values = dict(zip([v.name for v in qdq.graph.inputs], sample))
        values |= {f"{name}/fed": held[name] for name in computed}
        outputs = runtime.run([values[n] for n in input_names])[first:]
        for name, ref in zip(computed, outputs):
            a = held[name]
            if a.shape != ref.shape:
                worst[name], total[name] = 255, max(total[name], 1)
                continue
            diff = np.abs(a.astype(np.int32) - ref.astype(np.int32))
            within[name] += int(np.sum(diff <= _tolerance(ref)))
            total[name] += diff.size
            worst[name] = max(worst[name], int(diff.max()) if diff.size else 0)
    return {n: {"agreement": within[n] / total[n] if total[n] else 1.0, "max_lsb": worst[n]} for n in computed}


def _tolerance(values: np.ndarray) -> int:
    """1 LSB for int8; for int16 (16x8 layers) 1/8 of an int8 step, 32 LSB: the 16-bit kernels'
    fixed-point softmax and requantization differ from float rounding by a few int16 steps."""
    return 32 if values.dtype == np.int16 else 1


def faithfulness_failures(layers: dict[str, dict], minimum: float = MIN_LAYER_AGREEMENT) -> list[str]:
    """One line per layer below `minimum`, worst first (at most 5, then a count)."""
    bad = sorted((v["agreement"], n, v["max_lsb"]) for n, v in layers.items() if v["agreement"] < minimum)
    lines = [f"layer '{n}': {frac:.2%} of its int8 values within 1 LSB of the quantized reference fed the "
             f"artifact's own inputs (need {minimum:.0%}; off by up to {lsb} LSB): the lowering does not "
             "compute what the quantized graph says" for frac, n, lsb in bad[:5]]
    if len(bad) > 5:
        lines.append(f"... and {len(bad) - 5} more layer(s)")
    return lines


def summary(layers: dict[str, dict]) -> dict:
    """Report figures: how many layers, the worst one and its agreement."""
    if not layers:
        return {"layers": 0}
    name = min(layers, key=lambda n: layers[n]["agreement"])
    return {"layers": len(layers), "worst_layer": name, "worst_agreement": layers[name]["agreement"],
            "max_lsb": max(v["max_lsb"] for v in layers.values())}
