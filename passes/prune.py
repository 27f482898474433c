"""One-shot magnitude pruning of 1x1 convolution and fully connected weights (Elsen et al. 2019).

Every prunable layer is viewed as a matrix [output channels, input channels] and cut into
blocks of `block = (rows, cols)` weights: (1, 1) is unstructured, (2, 1) and (4, 1) group
2 or 4 output channels for one input channel, the shapes XNNPACK's sparse kernels run
fastest. Per layer, the round(sparsity x blocks) blocks with the smallest L1 norm become
zero, so each layer hits the requested sparsity to within one block.

What stays dense, as in the paper: the first convolution (it reads the graph input),
depthwise and other k x k convolutions (XNNPACK has sparse kernels for 1x1 only), and any
layer whose output channels are not a multiple of the block height. Each is reported as a
refusal with its reason.

`magnitude_mask` is the one definition of "what gets pruned"; the torch-side helpers in
edgec.training.pruning use it too, so pruning in torch or in the IR zeroes the same weights.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import onnx_ir as ir

from edgec.errors import EdgecError
from edgec.ir import const_array, node_label
from edgec.passes.base import EdgecPass, ValueNames, add_initializer, drop_unused_initializers

Block = tuple[int, int]  # (output channels, input channels) in one block
BLOCKS: tuple[Block, ...] = ((1, 1), (2, 1), (4, 1))


def parse_block(text: str | Block) -> Block:
    """'4x1' -> (4, 1); also accepts a tuple and 'unstructured' (= 1x1)."""
    if isinstance(text, tuple):
        block = tuple(int(v) for v in text)
    elif text.strip().lower() in ("unstructured", "none"):
        block = (1, 1)
    else:
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
        if not m:
            raise EdgecError(f"block '{text}': expected ROWSxCOLS over (output, input) channels, e.g. 4x1")
        block = (int(m.group(1)), int(m.group(2)))
    if block not in BLOCKS:
        raise EdgecError(f"block {block[0]}x{block[1]}: XNNPACK's sparse kernels take "
                         f"{', '.join(f'{r}x{c}' for r, c in BLOCKS)} (output x input channels)")
    return block  # type: ignore[return-value]


def check_sparsity(sparsity: float) -> float:
    sparsity = float(sparsity)
    if not 0.0 <= sparsity < 1.0:
        raise EdgecError(f"sparsity {sparsity}: expected a fraction in [0, 1), e.g. 0.9")
    return sparsity


def magnitude_mask(matrix: np.ndarray, sparsity: float, block: Block = (1, 1)) -> np.ndarray:
    """Boolean keep-mask of `matrix` [rows, cols]: the round(sparsity x blocks) blocks with the
    smallest L1 norm are False. Ties go to the earlier block, so the result is deterministic."""
    rows, cols = matrix.shape
    bh, bw = block
    if rows % bh or cols % bw:
        raise ValueError(f"a {rows}x{cols} matrix does not split into {bh}x{bw} blocks")
    scores = np.abs(matrix.astype(np.float64)).reshape(rows // bh, bh, cols // bw, bw).sum(axis=(1, 3))
    drop = int(round(sparsity * scores.size))
    keep = np.ones(scores.size, bool)
    keep[np.argsort(scores, axis=None, kind="stable")[:drop]] = False
    keep = keep.reshape(scores.shape)
    return np.repeat(np.repeat(keep, bh, axis=0), bw, axis=1)


@dataclasses.dataclass(frozen=True)
class PrunedLayer:
    """One layer after pruning: what it is and how many of its weights are now zero."""

    node: str
    op_type: str
    shape: tuple[int, int]  # [output channels, input channels]
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / (self.shape[0] * self.shape[1])

    def as_dict(self) -> dict:
        return {"node": self.node, "op": self.op_type, "shape": list(self.shape), "zeros": self.zeros,
                "sparsity": self.sparsity}


# -- which layers, and how their weight reads as [out, in] --------------------------------

def _weight_matrix(node: ir.Node) -> tuple[int, np.ndarray] | str:
    """(weight input index, weight as [out, in]) for a prunable node, else why it is not."""
    if node.op_type == "Conv":
        w = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
        if w is None or w.ndim != 4:
            return "weight is not a constant 4-D tensor"
        if node.inputs[0].is_graph_input():
            return "first layer (reads the graph input); stays dense"
        group = node.attributes.get_int("group", 1)
        if group != 1:
            return "depthwise or grouped convolution; stays dense (XNNPACK's sparse kernels are 1x1, groups 1)"
        if w.shape[2:] != (1, 1):
            return f"{w.shape[2]}x{w.shape[3]} kernel; only 1x1 convolutions are pruned"
        return 1, w.reshape(w.shape[0], w.shape[1])
    if node.op_type in ("Gemm", "MatMul"):
        w = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
        if w is None or w.ndim != 2 or const_array(node.inputs[0]) is not None:
            return "not a fully connected layer with constant 2-D weights"
        if node.inputs[0].is_graph_input():
            return "first layer (reads the graph input); stays dense"
        trans_b = node.op_type == "Gemm" and node.attributes.get_int("transB", 0)
        return 1, (w if trans_b else w.T)
    return "not a convolution or fully connected layer"


def _store(matrix: np.ndarray, like: np.ndarray, node: ir.Node) -> np.ndarray:
    """`matrix` [out, in] back in the node's own weight layout."""
    if node.op_type == "Conv":
        return matrix.reshape(like.shape)
    trans_b = node.op_type == "Gemm" and node.attributes.get_int("transB", 0)
    return matrix if trans_b else np.ascontiguousarray(matrix.T)


class MagnitudePrune(EdgecPass):
    """Zero the smallest-magnitude blocks of every 1x1 conv (and, with `fc`, FC) weight.

    Not output-preserving by design: the model it returns is the pruned model, which the
    user fine-tunes (edgec.training.pruning) or accepts. Results per layer are in `layers`.
    """

    name = "prune"

    def __init__(self, sparsity: float = 0.9, block: str | Block = (1, 1), fc: bool = True) -> None:
        super().__init__()
        self.sparsity = check_sparsity(sparsity)
        self.block = parse_block(block)
        self.fc = fc
        self.layers: list[PrunedLayer] = []

    def apply(self, model: ir.Model) -> bool:
        self.layers = []
        graph = model.graph
        names = ValueNames(graph)
        for node in list(graph):
            if node.op_type not in ("Conv", "Gemm", "MatMul"):
                continue
            if node.op_type != "Conv" and not self.fc:
                self.refuse(node, "fully connected layers left dense (fc=False)")
                continue
            found = _weight_matrix(node)
            if isinstance(found, str):
                self.refuse(node, found)
                continue
            index, matrix = found
            rows = matrix.shape[0]
            if rows % self.block[0]:
                self.refuse(node, f"{rows} output channels are not a multiple of the {self.block[0]}x"
                                  f"{self.block[1]} block; stays dense")
                continue
            pruned = np.where(magnitude_mask(matrix, self.sparsity, self.block), matrix, 0).astype(matrix.dtype)
            old = node.inputs[index]
            weights = _store(pruned, const_array(old), node)
            node.replace_input_with(index, add_initializer(graph, names, f"{old.name}_pruned", weights))
            drop_unused_initializers(graph, [old])
            self.layers.append(PrunedLayer(node_label(node), node.op_type, matrix.shape, int(np.sum(pruned == 0))))
        if not self.layers:
            return False
        zeros = sum(layer.zeros for layer in self.layers)
        total = sum(layer.shape[0] * layer.shape[1] for layer in self.layers)
        self.note(f"pruned {len(self.layers)} layer(s) to {self.sparsity:.0%} in {self.block[0]}x{self.block[1]} "
                  f"blocks: {zeros}/{total} weights zero ({zeros / total:.1%})")
        return True
