"""The state of one lowering: which TFLite tensor holds each ONNX value, in which layout.

Op visitors ask for an input in the layout they need (`tensor(value, perm)`) and record
their outputs (`define(value, perm)`); layout conversions (TRANSPOSE, or RESHAPE when the
bytes do not move) are emitted here, once per value and layout, and counted for the report.

For a quantized graph (see qdq.py) the context also owns the int8 types: a quantized value
is one int8 tensor with its scale and zero point. While an integer node is lowered
(`integer` True) visitors get and define int8 tensors and quantized constants; while a float
node is lowered they get float tensors: a DEQUANTIZE is emitted before the first float
reader of an int8 value and a QUANTIZE after a float op that computes a quantized value.
So the visitors need to know about int8 only where they create constants or temporaries.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import const_array, node_label, numpy_dtype, static_shape
from edgec.lower.tflite import layout, quantized
from edgec.lower.tflite.builder import TFLiteGraph
from edgec.lower.tflite.integer_plan import IntegerPlan
from edgec.lower.tflite.layout import Perm
from edgec.lower.tflite.qdq import ActivationParams, QuantizedConstant, QuantizedGraph


@dataclasses.dataclass(frozen=True)
class Held:
    """A TFLite tensor holding an ONNX value transposed by `perm`."""

    tensor: int
    perm: Perm


class LoweringError(Exception):
    """A node passed its check but could not be lowered: a bug in a visitor's check."""


class LoweringContext:
    def __init__(self, graph: TFLiteGraph, quant: QuantizedGraph | None = None):
        self.graph = graph
        self._held: dict[ir.Value, Held] = {}
        # (value, perm[, kind]) -> its tensor in that layout: conversions, constants, DEQUANTIZEs.
        self._layouts: dict[tuple, int] = {}
        self.layout_transposes = 0
        self.layout_reshapes = 0
        self.node: ir.Node | None = None  # the node being lowered, for tensor names
        # Nodes a visitor folded into its own ops (e.g. a bias Add into FULLY_CONNECTED).
        self.claimed: set[ir.Node] = set()
        # Quantized graphs only: the int8 facts, which nodes run in int8, and whether the
        # node being lowered does (then its tensors and constants are int8).
        self.quant = quant
        self.plan: IntegerPlan | None = None
        self.integer = False
        self._pending_quantize: list[tuple[int, int]] = []  # (float tensor, int8 tensor)
        # Sparse targets: shape the graph for XNNPACK's NCHW sparse kernels (see sparse.py).
        self.sparse = False
        self.sparse_weights: list[dict] = []  # one report entry per weight stored compressed

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

    # -- quantization ----------------------------------------------------------------------

    def qparams(self, value: ir.Value) -> ActivationParams | None:
        """The int8 parameters `value` is held with, or None for a float value."""
        return self.quant.params(value) if self.quant is not None else None

    def is_quantization_point(self, value: ir.Value) -> bool:
        """True where the quantized graph rounds to int8: a fusion must not skip it."""
        return self.quant is not None and self.quant.is_quantization_point(value)

    def quantized_const(self, value: ir.Value | None) -> QuantizedConstant | None:
        """The integers of a constant, when the node being lowered computes in int8."""
        if not self.integer or self.quant is None or value is None:
            return None
        return self.quant.constants.get(value)

    def tensor_params(self, tensor: int) -> ActivationParams | None:
        return quantized.tensor_params(self.graph.tensors[tensor])

    def quantized_values(self) -> dict[str, Held]:
        """ONNX value name -> the int8 tensor holding it, for every quantized value lowered
        (what a per-tensor comparison with the QDQ graph reads)."""
        return {v.name: h for v, h in self._held.items() if self.tensor_params(h.tensor) is not None}

    def finish_node(self) -> None:
        """Quantize what a float node computed into the int8 tensors that hold it."""
        for src, dst in self._pending_quantize:
            self.emit("QUANTIZE", [src], [dst])
        self._pending_quantize.clear()

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
            if self.quantized_const(value) is not None:
                return self.quantized_weights(value, perm)
            key = (value, perm)
            if key not in self._layouts:
                data = np.ascontiguousarray(array.astype(numpy_dtype(value), copy=False).transpose(perm))
                self._layouts[key] = self.graph.add_const(data, value.name)
            return self._layouts[key]
        held = self.held(value)
        if held.perm == perm:
            tensor = held.tensor
        else:
            key = (value, perm)
            if key not in self._layouts:
                self._layouts[key] = self._convert(value, held, perm)
            tensor = self._layouts[key]
        if not self.integer and self.tensor_params(tensor) is not None:
            # A float op reading an int8 value: one DEQUANTIZE per value and layout, shared.
            key = (value, perm, "float")
            if key not in self._layouts:
                self._layouts[key] = self.dequantize(tensor, f"{self._name(value, perm)}/float")
            tensor = self._layouts[key]
        return tensor

    def quantized_weights(self, value: ir.Value, perm: Sequence[int], int4: bool = True) -> int:
        """An integer constant (weights, bias, operand) stored with `perm` and its per-axis
        parameters. int4 weights stay packed INT4 unless the kernel reading them has no int4
        variant (`int4=False`): then they are widened to int8, which is exact."""
        qc = self.quant.constants[value]
        if qc.bits == 4 and not int4:
            qc = dataclasses.replace(qc, bits=8)
        perm = tuple(perm)
        key = (value, perm, qc.bits)
        if key not in self._layouts:
            data, dtype, quant = quantized.constant_in_layout(qc, len(perm), perm)
            self._layouts[key] = self.graph.add_tensor(value.name, layout.permute(self.shape(value), perm), dtype,
                                                       data=data, quantization=quant)
        return self._layouts[key]

    def dequantize(self, tensor: int, name: str) -> int:
        out = self.graph.add_tensor(name, self.graph.shape(tensor), np.float32)
        self.emit("DEQUANTIZE", [tensor], [out])
        return out

    def quantize(self, tensor: int, params: ActivationParams, name: str) -> int:
        """QUANTIZE a float tensor onto `params`, or requantize an int8 one."""
        out = self.graph.add_tensor(name, self.graph.shape(tensor), quantized.activation_dtype(params),
                                    quantization=quantized.per_tensor(params))
        self.emit("QUANTIZE", [tensor], [out])
        return out

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
        src = self.graph.tensors[held.tensor]
        out = self.graph.add_tensor(self._name(value, perm), layout.permute(shape, perm), src.type,
                                    quantization=src.quantization)
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
        """Create the tensor that holds `value` with `perm` and record it; the tensor the
        current op writes (float in a float node even when `value` is held in int8)."""
        shape = self.shape(value)
        perm = layout.identity(len(shape)) if perm is None else tuple(perm)
        params = self.qparams(value)
        tfl_shape = layout.permute(shape, perm)
        if params is None:
            tensor = self.graph.add_tensor(self._name(value, perm), tfl_shape,
                                           numpy_dtype(value), quantization=quantization)
            self._held[value] = Held(tensor, perm)
            return tensor
        held = self.graph.add_tensor(self._name(value, perm), tfl_shape, quantized.activation_dtype(params),
                                     quantization=quantized.per_tensor(params))
        self._held[value] = Held(held, perm)
        if self.integer:
            return held
        computed = self.graph.add_tensor(f"{self._name(value, perm)}/float", tfl_shape, np.float32)
        self._pending_quantize.append((computed, held))
        return computed

    def alias(self, value: ir.Value, source: ir.Value) -> None:
        """`value` is `source` (Identity, Dropout, ONNX Transpose composed into a layout)."""
        self.hold(value, self.held(source))

    def hold(self, value: ir.Value, held: Held) -> None:
        """`value` is the content of an existing tensor; converted when `value` is held with
        other int8 parameters (or none) than that tensor has."""
        want = self.qparams(value)
        have = self.tensor_params(held.tensor)
        if want != have:
            name = self._name(value, held.perm)
            if want is None:
                held = Held(self.dequantize(held.tensor, name), held.perm)
            else:
                held = Held(self.quantize(held.tensor, want, name), held.perm)
        self._held[value] = held

    # -- new tensors and ops ---------------------------------------------------------------

    def temp(self, shape: Sequence[int], dtype: Any = np.float32, hint: str = "",
             quantization: schema.QuantizationParametersT | None = None) -> int:
        """An intermediate tensor of a decomposition, named after the node being lowered."""
        base = node_label(self.node) if self.node is not None else "t"
        return self.graph.add_tensor(f"{base}/{hint}" if hint else base, shape, dtype, quantization=quantization)

    def temp_like(self, tensor: int, shape: Sequence[int] | None = None, hint: str = "") -> int:
        """An intermediate with the type and quantization of `tensor` (int8 stays int8)."""
        src = self.graph.tensors[tensor]
        shape = self.graph.shape(tensor) if shape is None else shape
        return self.temp(shape, src.type, hint, quantization=src.quantization)

    def scalar_like(self, value: float, tensor: int, hint: str = "const") -> int:
        """A scalar constant for an elementwise op on `tensor`: float, or int8 on its grid."""
        params = self.tensor_params(tensor)
        if params is None:
            return self.float32(value, hint)
        return self.const_tensor(quantized.quantize_value(value, params), hint,
                                 quantization=quantized.per_tensor(params))

    def const_tensor(self, array: np.ndarray, hint: str = "const",
                     quantization: schema.QuantizationParametersT | None = None) -> int:
        base = node_label(self.node) if self.node is not None else "const"
        return self.graph.add_const(array, f"{base}/{hint}", quantization=quantization)

    def int32(self, values: Sequence[int] | np.ndarray, hint: str = "shape") -> int:
        return self.const_tensor(np.asarray(values, dtype=np.int32), hint)

    def float32(self, values: Any, hint: str = "const") -> int:
        return self.const_tensor(np.asarray(values, dtype=np.float32), hint)

    def emit(self, op: str, inputs: Sequence[int], outputs: Sequence[int], options: Any = None,
             version: int = 1) -> schema.OperatorT:
        if outputs and self.graph.tensors[outputs[0]].type == quantized.INT8:
            version = max(version, quantized.INT8_OP_VERSIONS.get(op, 1))
        elif outputs and self.graph.tensors[outputs[0]].type == quantized.INT16 or \
                inputs and self.graph.tensors[inputs[0]].type == quantized.INT16:
            version = max(version, quantized.INT16_OP_VERSIONS.get(op, 1))
        return self.graph.add_op(op, inputs, outputs, options, version)

    def _name(self, value: ir.Value, perm: Perm) -> str:
        if layout.is_identity(perm):
            return value.name
        if perm == layout.NHWC:
            return f"{value.name}/nhwc"
        return f"{value.name}/perm{''.join(map(str, perm))}"
