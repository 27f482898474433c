"""The state of one lowering: which TFLite tensor holds each ONNX value, in which layout.

Op visitors ask for an input in the layout they need (`tensor(value, perm)`) and record
their outputs (`define(value, perm)`); layout conversions (TRANSPOSE, or RESHAPE when the
bytes do not move) are emitted here, once per value and layout, and counted for the report.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import const_array, node_label, numpy_dtype, static_shape
from edgec.lower.tflite import layout
from edgec.lower.tflite.builder import TFLiteGraph
from edgec.lower.tflite.layout import Perm


@dataclasses.dataclass(frozen=True)
class Held:
    """A TFLite tensor holding an ONNX value transposed by `perm`."""

    tensor: int
    perm: Perm


class LoweringError(Exception):
    """A node passed its check but could not be lowered: a bug in a visitor's check."""


class LoweringContext:
    def __init__(self, graph: TFLiteGraph):
        self.graph = graph
        self._held: dict[ir.Value, Held] = {}
        self._layouts: dict[tuple[ir.Value, Perm], int] = {}
        self.layout_transposes = 0
        self.layout_reshapes = 0
        self.node: ir.Node | None = None  # the node being lowered, for tensor names
        # Nodes a visitor folded into its own ops (e.g. a bias Add into FULLY_CONNECTED).
        self.claimed: set[ir.Node] = set()

    # -- ONNX-side facts -------------------------------------------------------------------

    @staticmethod
    def shape(value: ir.Value) -> tuple[int, ...]:
        shape = static_shape(value)
        if shape is None:
            raise LoweringError(f"value '{value.name}' has no static shape")
        return shape

    @staticmethod
    def const(value: ir.Value | None) -> np.ndarray | None:
        return const_array(value)

    @staticmethod
    def sole_consumer(value: ir.Value) -> ir.Node | None:
        """The one node reading `value`, when nothing else (graph output included) does."""
        if value.is_graph_output():
            return None
        consumers = list(value.consumers())
        if len(consumers) != 1 or len(value.uses()) != 1:
            return None
        return consumers[0]

    def claim(self, node: ir.Node) -> None:
        """Mark `node` as lowered by the current visitor; the walk will skip it."""
        self.claimed.add(node)

    # -- values ----------------------------------------------------------------------------

    def held(self, value: ir.Value) -> Held:
        """The tensor holding `value` in whatever layout it was produced in."""
        if value not in self._held:
            array = self.const(value)
            if array is None:
                raise LoweringError(f"value '{value.name}' is used before it is produced")
            idx = self.graph.add_const(array.astype(numpy_dtype(value), copy=False), value.name)
            self._held[value] = Held(idx, layout.identity(array.ndim))
        return self._held[value]

    def perm(self, value: ir.Value) -> Perm:
        """The layout `value` is held in; constants are ONNX layout (any other is free)."""
        if self.const(value) is not None:
            return layout.identity(len(self.shape(value)))
        return self.held(value).perm

    def tensor(self, value: ir.Value, perm: Sequence[int] | None = None) -> int:
        """A tensor holding `value` transposed by `perm` (default: ONNX's own layout)."""
        shape = self.shape(value)
        perm = layout.identity(len(shape)) if perm is None else tuple(perm)
        array = self.const(value)
        if array is not None:  # permuted at compile time, never by a TRANSPOSE op
            key = (value, perm)
            if key not in self._layouts:
                data = np.ascontiguousarray(array.astype(numpy_dtype(value), copy=False).transpose(perm))
                self._layouts[key] = self.graph.add_const(data, value.name)
            return self._layouts[key]
        held = self.held(value)
        if held.perm == perm:
            return held.tensor
        key = (value, perm)
        if key not in self._layouts:
            self._layouts[key] = self._convert(value, held, perm)
        return self._layouts[key]

    def conversion_cost(self, value: ir.Value, perm: Sequence[int]) -> int:
        """Elements a TRANSPOSE would move to give `value` in `perm` (0 if free or done)."""
        if self.const(value) is not None:
            return 0
        held = self.held(value)
        perm = tuple(perm)
        if held.perm == perm or (value, perm) in self._layouts or self._is_free(value, held, perm):
            return 0
        return math.prod(self.shape(value))

    def _is_free(self, value: ir.Value, held: Held, perm: Perm) -> bool:
        src_shape = layout.permute(self.shape(value), held.perm)
        return layout.is_memory_noop(src_shape, layout.relayout(held.perm, perm))

    def _convert(self, value: ir.Value, held: Held, perm: Perm) -> int:
        shape = self.shape(value)
        out = self.graph.add_tensor(self._name(value, perm), layout.permute(shape, perm), numpy_dtype(value))
        if self._is_free(value, held, perm):
            self.layout_reshapes += 1
            self.emit("RESHAPE", [held.tensor, self.int32(layout.permute(shape, perm))], [out])
        else:
            self.layout_transposes += 1
            q = layout.relayout(held.perm, perm)
            self.emit("TRANSPOSE", [held.tensor, self.int32(q, "perm")], [out])
        return out

    def define(self, value: ir.Value, perm: Sequence[int] | None = None,
               quantization: schema.QuantizationParametersT | None = None) -> int:
        """Create the tensor that holds `value` with `perm` and record it."""
        shape = self.shape(value)
        perm = layout.identity(len(shape)) if perm is None else tuple(perm)
        tensor = self.graph.add_tensor(self._name(value, perm), layout.permute(shape, perm),
                                       numpy_dtype(value), quantization=quantization)
        self._held[value] = Held(tensor, perm)
        return tensor

    def alias(self, value: ir.Value, source: ir.Value) -> None:
        """`value` is `source` (Identity, Dropout, ONNX Transpose composed into a layout)."""
        self._held[value] = self.held(source)

    def hold(self, value: ir.Value, held: Held) -> None:
        self._held[value] = held

    # -- new tensors and ops ---------------------------------------------------------------

    def temp(self, shape: Sequence[int], dtype: Any = np.float32, hint: str = "",
             quantization: schema.QuantizationParametersT | None = None) -> int:
        """An intermediate tensor of a decomposition, named after the node being lowered."""
        base = node_label(self.node) if self.node is not None else "t"
        return self.graph.add_tensor(f"{base}/{hint}" if hint else base, shape, dtype, quantization=quantization)

    def const_tensor(self, array: np.ndarray, hint: str = "const",
                     quantization: schema.QuantizationParametersT | None = None) -> int:
        base = node_label(self.node) if self.node is not None else "const"
        return self.graph.add_const(np.ascontiguousarray(array), f"{base}/{hint}", quantization=quantization)

    def int32(self, values: Sequence[int] | np.ndarray, hint: str = "shape") -> int:
        return self.const_tensor(np.asarray(values, dtype=np.int32), hint)

    def float32(self, values: Any, hint: str = "const") -> int:
        return self.const_tensor(np.asarray(values, dtype=np.float32), hint)

    def emit(self, op: str, inputs: Sequence[int], outputs: Sequence[int], options: Any = None,
             version: int = 1) -> schema.OperatorT:
        return self.graph.add_op(op, inputs, outputs, options, version)

    def _name(self, value: ir.Value, perm: Perm) -> str:
        if layout.is_identity(perm):
            return value.name
        if perm == layout.NHWC:
            return f"{value.name}/nhwc"
        return f"{value.name}/perm{''.join(map(str, perm))}"
