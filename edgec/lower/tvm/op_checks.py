"""edgec's own per-op conditions for the TVM lowering, checked before Relax's ONNX import.

Apache TVM's converters accept some nodes they then crash on (deep in the importer, with no
node name) or convert wrongly. A check here turns such a node into a named refusal up front,
like a TFLite visitor's `check`. Its docstring is the condition text of the supported-ops
table (edgec/supported_ops.py), so the table says what the importer will refuse.

Checks read `onnx.NodeProto`s (the importer works on the proto) plus the graph's
initializers by name (TensorProtos: a check converts only what it looks at).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np
import onnx

Check = Callable[[onnx.NodeProto, Mapping[str, onnx.TensorProto]], "str | None"]

# Handled by the importer itself rather than by a converter.
BUILTIN_OPS = ("If", "Constant")


@dataclasses.dataclass(frozen=True)
class TVMCheck:
    op_type: str
    check: Check
    lowers: bool = True  # False: the op is refused whatever the node (converter known broken)


TVM_CHECKS: dict[str, TVMCheck] = {}


def tvm_check(*op_types: str, lowers: bool = True) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        for op in op_types:
            if op in TVM_CHECKS:
                raise ValueError(f"two TVM checks for {op}")
            TVM_CHECKS[op] = TVMCheck(op, check, lowers)
        return check

    return register


def describe(op_type: str) -> str:
    entry = TVM_CHECKS.get(op_type)
    if entry is None:
        return ""
    return " ".join((entry.check.__doc__ or "").strip().split("\n\n")[0].split())


def check_node(node: onnx.NodeProto, constants: Mapping[str, onnx.TensorProto]) -> str | None:
    """Why edgec refuses `node` for TVM before import, or None."""
    entry = TVM_CHECKS.get(node.op_type)
    return None if entry is None else entry.check(node, constants)


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _const(constants: Mapping[str, onnx.TensorProto], name: str) -> np.ndarray | None:
    tensor = constants.get(name) if name else None
    return None if tensor is None else onnx.numpy_helper.to_array(tensor)
