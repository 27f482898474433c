"""Assemble a TFLite flatbuffer with the schema's object API (no TensorFlow).

`TFLiteGraph` is the one place tensors, constant buffers, operator codes and operators are
created, so that every lowering (fp32 today, int8/int4 and sparse weights later) shares
the same bookkeeping: a tensor may carry `QuantizationParametersT` and `SparsityParametersT`.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Any, Sequence

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

# Constant data is aligned like the TFLite converter aligns it, so kernels and delegates
# can read weights in place with vector loads.
BUFFER_ALIGNMENT = 16

# Constants up to this size are shared when identical (see add_const).
_DEDUPE_MAX_BYTES = 1 << 16

# The schema's `version` field of ModelT; 3 is the only one current runtimes read.
SCHEMA_VERSION = 3

_TENSOR_TYPES = {
    np.dtype(np.float32): schema.TensorType.FLOAT32,
    np.dtype(np.float16): schema.TensorType.FLOAT16,
    np.dtype(np.int32): schema.TensorType.INT32,
    np.dtype(np.int64): schema.TensorType.INT64,
    np.dtype(np.int16): schema.TensorType.INT16,
    np.dtype(np.int8): schema.TensorType.INT8,
    np.dtype(np.uint8): schema.TensorType.UINT8,
    np.dtype(np.bool_): schema.TensorType.BOOL,
}

_BUILTIN_CODES = {
    name: code for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
_OPTION_TYPES = {
    name: code for name, code in vars(schema.BuiltinOptions).items() if not name.startswith("_")
}


def tensor_type(dtype: Any) -> int:
    """The schema's TensorType for a numpy dtype (INT4 is passed as the schema int itself)."""
    if isinstance(dtype, int):
        return dtype
    try:
        return _TENSOR_TYPES[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"no TFLite tensor type for numpy dtype {np.dtype(dtype)}") from None


class _AlignedBufferT(schema.BufferT):
    """A BufferT whose bytes start on a BUFFER_ALIGNMENT boundary in the file."""

    def Pack(self, builder: flatbuffers.Builder) -> int:  # noqa: N802 (schema naming)
        data_offset = None
        if self.data is not None:
            payload = memoryview(np.ascontiguousarray(self.data)).cast("B")  # no copy of the weights
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data_offset = builder.EndVector()
        schema.BufferStart(builder)
        if data_offset is not None:
            schema.BufferAddData(builder, data_offset)
        return schema.BufferEnd(builder)


class TFLiteGraph:
    """One subgraph under construction, plus the model-level tables it needs."""

    def __init__(self, description: str = "edgec"):
        self.description = description
        self.tensors: list[schema.TensorT] = []
        self.operators: list[schema.OperatorT] = []
        self.operator_codes: list[schema.OperatorCodeT] = []
        # Buffer 0 is the schema's empty sentinel that every non-constant tensor points at.
        self.buffers: list[schema.BufferT] = [schema.BufferT()]
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self._opcode_index: dict[tuple[str, int], int] = {}
        self._const_cache: dict[tuple, int] = {}
        self._names: collections.Counter[str] = collections.Counter()

    # -- tensors ---------------------------------------------------------------------------

    def add_tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: Any = np.float32,
        data: np.ndarray | None = None,
        quantization: schema.QuantizationParametersT | None = None,
        sparsity: schema.SparsityParametersT | None = None,
    ) -> int:
        """Create a tensor; with `data` it is a constant backed by its own buffer."""
        t = schema.TensorT()
        t.name = self._unique_name(name)
        t.shape = [int(d) for d in shape]
        t.type = tensor_type(dtype)
        t.quantization = quantization
        t.sparsity = sparsity
        if data is not None:
            buf = _AlignedBufferT()
            buf.data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def add_const(self, array: np.ndarray, name: str,
                  quantization: schema.QuantizationParametersT | None = None) -> int:
        """A constant tensor; identical unquantized constants share one tensor. A 0-d array stays
        rank 0 (np.ascontiguousarray would make it [1], and [] op [1] runs as [1])."""
        array = np.require(array, requirements="C")
        key = None
        # Hashing is for the many small shared constants (shapes, axes, scalars); a weight is
        # requested once per layout (the context caches those), and hashing BERT's tables cost seconds.
        if quantization is None and array.nbytes <= _DEDUPE_MAX_BYTES:
            digest = hashlib.sha1(array.tobytes()).hexdigest()
            key = (array.dtype.str, array.shape, digest)
            if key in self._const_cache:
                return self._const_cache[key]
        idx = self.add_tensor(name, array.shape, array.dtype, data=array, quantization=quantization)
        if key is not None:
            self._const_cache[key] = idx
        return idx

    def shape(self, tensor: int) -> tuple[int, ...]:
        return tuple(self.tensors[tensor].shape)

    def name(self, tensor: int) -> str:
        return self.tensors[tensor].name

    def is_const(self, tensor: int) -> bool:
        return self.tensors[tensor].buffer != 0

    def rename(self, tensor: int, name: str) -> None:
        """Give a tensor exactly `name` (graph inputs and outputs keep the ONNX names);
        a tensor that already has that name gets a fresh one."""
        if self.tensors[tensor].name == name:
            return
        for other in self.tensors:
            if other.name == name:
                other.name = self._unique_name(name)
        self._names[name] += 1
        self.tensors[tensor].name = name

    def _unique_name(self, name: str) -> str:
        n = self._names[name]
        self._names[name] += 1
        return name if n == 0 else f"{name}_{n}"

    # -- operators -------------------------------------------------------------------------

    def add_op(self, op: str, inputs: Sequence[int], outputs: Sequence[int],
               options: Any = None, version: int = 1) -> schema.OperatorT:
        """Append a builtin operator; `op` is the BuiltinOperator name, e.g. "CONV_2D".

        Optional inputs are passed as -1, as the schema wants.
        """
        o = schema.OperatorT()
        o.opcodeIndex = self._opcode(op, version)
        o.inputs = [int(i) for i in inputs]
        o.outputs = [int(i) for i in outputs]
        if options is not None:
            option_name = type(options).__name__.removesuffix("T")
            o.builtinOptionsType = _OPTION_TYPES[option_name]
            o.builtinOptions = options
        self.operators.append(o)
        return o

    def _opcode(self, op: str, version: int) -> int:
        key = (op, version)
        if key not in self._opcode_index:
            code = _BUILTIN_CODES[op]
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            # Readers older than the 32-bit builtin_code field look at the deprecated byte.
            oc.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = version
            self.operator_codes.append(oc)
            self._opcode_index[key] = len(self.operator_codes) - 1
        return self._opcode_index[key]

    def op_name(self, op: schema.OperatorT) -> str:
        code = self.operator_codes[op.opcodeIndex].builtinCode
        return next(name for name, c in _BUILTIN_CODES.items() if c == code)

    def op_counts(self) -> dict[str, int]:
        counts = collections.Counter(self.op_name(op) for op in self.operators)
        return dict(sorted(counts.items()))

    # -- output ----------------------------------------------------------------------------

    def serialize(self) -> bytes:
        subgraph = schema.SubGraphT()
        subgraph.name = "main"
        subgraph.tensors = self.tensors
        subgraph.inputs = list(self.inputs)
        subgraph.outputs = list(self.outputs)
        subgraph.operators = self.operators

        signature = schema.SignatureDefT()
        signature.signatureKey = "serving_default"
        signature.subgraphIndex = 0
        signature.inputs = [_tensor_map(self.tensors[i].name, i) for i in self.inputs]
        signature.outputs = [_tensor_map(self.tensors[i].name, i) for i in self.outputs]

        model = schema.ModelT()
        model.version = SCHEMA_VERSION
        model.description = self.description
        model.operatorCodes = self.operator_codes
        model.subgraphs = [subgraph]
        model.buffers = self.buffers
        model.signatureDefs = [signature]

        # Room for every buffer with its alignment padding and the tables, so the builder never
        # grows (each growth copies everything written so far).
        size_hint = (1 << 20) + 256 * (len(self.tensors) + len(self.operators)) + sum(
            b.data.size + BUFFER_ALIGNMENT for b in self.buffers if b.data is not None)
        builder = flatbuffers.Builder(size_hint)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _tensor_map(name: str, index: int) -> schema.TensorMapT:
    m = schema.TensorMapT()
    m.name = name
    m.tensorIndex = index
    return m
