"""Fold constant subgraphs into initializers and drop what nothing reads.

Exporters often compute weights at run time (ConstantOfShape/Expand/Reshape/Cast chains,
Transposes of a weight, Shape arithmetic on static shapes). Lowerings want plain constant
tensors, so this pass evaluates every node whose inputs are all constant (onnxscript's folder,
which runs the ONNX reference evaluator), turns every Constant node into an initializer,
and removes dead nodes and initializers.
"""

from __future__ import annotations

import logging

import onnx_ir as ir
import onnx_ir.passes.common as common
from onnxscript.optimizer import fold_constants_ir

from edgec.passes.base import EdgecPass

# Quantization ops carry the quantization itself (scales, zero points, integer weights);
# folding DequantizeLinear(int8 weight) back into a float weight would undo `quantize`.
_NEVER_FOLD = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})

# onnxscript keeps ConstantOfShape to keep models small; here its output is usually a weight
# or a bias that the lowerings need as a tensor, so fold it like anything else.
_ALWAYS_FOLD = frozenset({"ConstantOfShape"})


def _should_fold(node: ir.Node) -> bool | None:
    if node.domain not in ("", "ai.onnx"):
        return None
    if node.op_type in _NEVER_FOLD:
        return False
    if node.op_type in _ALWAYS_FOLD:
        return True
    return None  # onnxscript's default rules (deterministic ops, size limits)


class ConstantFolding(EdgecPass):
    """Evaluate constant subgraphs, lift constants to initializers, remove unused values.

    `size_limit` caps (in elements) the tensors the folder reads or writes: a folded tensor
    becomes part of the artifact, and 16M floats (64 MB) is beyond any edge model's weight,
    so in practice only pathological graphs hit it.
    """

    name = "constant_folding"
    removes = {**{op: "the input's shape is static: folded" for op in ("Shape", "Size")},
               **{op: "constant inputs (after folding): folded" for op in ("Range", "ConstantOfShape", "EyeLike")}}

    def __init__(self, size_limit: int = 1 << 24) -> None:
        super().__init__()
        self.size_limit = size_limit

    def apply(self, model: ir.Model) -> bool:
        graph = model.graph
        nodes_before = len(graph)
        initializers_before = set(graph.initializers)

        # A node the reference evaluator cannot evaluate is simply left unfolded; onnxscript logs
        # that at WARNING ("Evaluation failed: ..."), which reached the user's terminal as noise.
        folder_log = logging.getLogger("onnxscript.optimizer._constant_folding")
        level = folder_log.level
        folder_log.setLevel(logging.ERROR)
        try:
            folded = fold_constants_ir(
                model,
                onnx_shape_inference=True,  # lets Shape/Size of static shapes fold too
                input_size_limit=self.size_limit,
                output_size_limit=self.size_limit,
                should_fold=_should_fold,
            ).modified
        finally:
            folder_log.setLevel(level)
        constants = sum(1 for n in graph if n.op_type == "Constant" and n.domain in ("", "ai.onnx"))
        lifted = common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model).modified
        removed = common.RemoveUnusedNodesPass()(model).modified

        remaining_constants = sum(1 for n in graph if n.op_type == "Constant" and n.domain in ("", "ai.onnx"))
        initializers_after = set(graph.initializers)
        if len(graph) != nodes_before:
            self.note(f"{nodes_before} -> {len(graph)} nodes")
        if constants - remaining_constants:
            self.note(f"{constants - remaining_constants} constants moved to initializers")
        added, dropped = initializers_after - initializers_before, initializers_before - initializers_after
        if added or dropped:
            self.note(f"{len(added)} initializers added, {len(dropped)} removed")
        return folded or lifted or removed
