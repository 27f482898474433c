"""Sparse weights for XNNPACK's sparse inference: a compressed constant and a DENSIFY op.

XNNPACK runs a region of the graph in NCHW with sparse 1x1 kernels only when the TFLite
delegate passes it the sparse-inference hint, and the delegate does that only when a
DENSIFY op reads a constant fp32 tensor carrying SparsityParametersT (it densifies the
weights once at load time; XNNPACK then finds the zeros and block shape itself). So for a
sparse target every pruned 1x1 CONV_2D filter and FULLY_CONNECTED weight is stored
compressed and read through a DENSIFY, the way TensorFlow's converter does it with
`Optimize.EXPERIMENTAL_SPARSITY`.

The encoding (TFLite's CSR over the last axis, optionally in blocks of 2 or 4 along the
output-channel axis) is chosen per tensor by size: only the stored values and indices
differ, the dense tensor DENSIFY rebuilds is the same.
"""

from __future__ import annotations

import math

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgec.lower.tflite.builder import TFLiteGraph

FLOAT32 = schema.TensorType.FLOAT32
BLOCK_ROWS = (1, 2, 4)  # output channels per stored block; XNNPACK's 1x1, 2x1, 4x1
# TensorFlow's converter stores a tensor sparse from 30% zeros; below that a load-time
# DENSIFY saves too few bytes to matter (and XNNPACK wants > 2/3 zeros to go sparse at all).
MIN_ZERO_FRACTION = 0.3


def _index_vector(values: np.ndarray) -> tuple[int, object]:
    """The smallest schema index vector holding `values` (unsigned 8/16 bit, else int32)."""
    top = int(values.max()) if values.size else 0
    if top < 1 << 8:
        vec, kind, dtype = schema.Uint8VectorT(), schema.SparseIndexVector.Uint8Vector, np.uint8
    elif top < 1 << 16:
        vec, kind, dtype = schema.Uint16VectorT(), schema.SparseIndexVector.Uint16Vector, np.uint16
    else:
        vec, kind, dtype = schema.Int32VectorT(), schema.SparseIndexVector.Int32Vector, np.int32
    vec.values = values.astype(dtype).tolist()
    return kind, vec


def _dense_dim(size: int) -> schema.DimensionMetadataT:
    dim = schema.DimensionMetadataT()
    dim.format = schema.DimensionType.DENSE
    dim.denseSize = int(size)
    return dim


def encode(weights: np.ndarray, block_rows: int = 1) -> tuple[np.ndarray, schema.SparsityParametersT]:
    """Compress `weights` [O, ..., I] (O output channels first, input channels last, all axes
    between of size 1: a 1x1 OHWI filter or an FC [N, K] matrix).

    Axes before the last are dense, the last is CSR. With `block_rows` > 1, output channels
    are grouped in blocks of that many (the block map's axis 0): a block is stored, all its
    rows, when any of them is nonzero at that input channel.
    """
    if weights.ndim < 2 or any(d != 1 for d in weights.shape[1:-1]):
        raise ValueError(f"expected [O, 1, ..., 1, I] weights, got shape {list(weights.shape)}")
    rows, cols = weights.shape[0], weights.shape[-1]
    if rows % block_rows:
        raise ValueError(f"{rows} output channels do not split into blocks of {block_rows}")
    blocks = weights.reshape(rows // block_rows, block_rows, cols)
    stored = np.any(blocks != 0, axis=1)  # [row blocks, cols]: which blocks have a nonzero
    segments = np.concatenate([[0], np.cumsum(stored.sum(axis=1))])
    block_row, col = np.nonzero(stored)  # row-major: the CSR order
    values = blocks[block_row, :, col].reshape(-1)  # each block's rows, one after the other

    dims = [_dense_dim(rows // block_rows)] + [_dense_dim(1) for _ in weights.shape[1:-1]]
    csr = schema.DimensionMetadataT()
    csr.format = schema.DimensionType.SPARSE_CSR
    csr.arraySegmentsType, csr.arraySegments = _index_vector(segments)
    csr.arrayIndicesType, csr.arrayIndices = _index_vector(col)
    dims.append(csr)
    params = schema.SparsityParametersT()
    params.traversalOrder = list(range(weights.ndim))
    if block_rows > 1:
        params.traversalOrder.append(weights.ndim)
        params.blockMap = [0]
        dims.append(_dense_dim(block_rows))
    params.dimMetadata = dims
    return np.ascontiguousarray(values.astype(weights.dtype)), params


def encoded_bytes(values: np.ndarray, params: schema.SparsityParametersT) -> int:
    csr = next(d for d in params.dimMetadata if d.format == schema.DimensionType.SPARSE_CSR)
    width = {schema.SparseIndexVector.Uint8Vector: 1, schema.SparseIndexVector.Uint16Vector: 2,
             schema.SparseIndexVector.Int32Vector: 4}
    return (values.nbytes + width[csr.arraySegmentsType] * len(csr.arraySegments.values)
            + width[csr.arrayIndicesType] * len(csr.arrayIndices.values))


def smallest_encoding(weights: np.ndarray) -> tuple[int, np.ndarray, schema.SparsityParametersT]:
    """(block rows, values, parameters) of the smallest encoding among 1x1, 2x1 and 4x1 blocks."""
    options = [(b, *encode(weights, b)) for b in BLOCK_ROWS if weights.shape[0] % b == 0]
    return min(options, key=lambda o: encoded_bytes(o[1], o[2]))


def _sparse_candidates(graph: TFLiteGraph) -> list[tuple[object, int]]:
    """(operator, weight input index) for 1x1 CONV_2D filters and FULLY_CONNECTED weights that
    are float32 constants."""
    found = []
    for op in graph.operators:
        name = graph.op_name(op)
        if name not in ("CONV_2D", "FULLY_CONNECTED") or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        tensor = graph.tensors[op.inputs[1]]
        if not graph.is_const(op.inputs[1]) or tensor.type != FLOAT32 or tensor.sparsity is not None:
            continue
        shape = tuple(tensor.shape)
        if name == "CONV_2D" and (len(shape) != 4 or shape[1:3] != (1, 1)):
            continue
        if name == "FULLY_CONNECTED" and len(shape) != 2:
            continue
        found.append((op, 1))
    return found


def sparsify_weights(graph: TFLiteGraph) -> list[dict]:
    """Store each 1x1 conv filter / FC weight with at least 30% zeros compressed, read through a
    DENSIFY, where the compressed form is the smaller one. Returns one entry per encoded tensor
    for the report.

    The compressed constant keeps its tensor (shape = the dense shape, as the schema wants)
    and its buffer is rewritten, so no dense copy stays in the file. DENSIFY ops go first in
    the operator list: they read constants only, and the interpreter runs ops in order.
    """
    densified: dict[int, int] = {}  # weight tensor -> DENSIFY output
    entries = []
    for op, index in _sparse_candidates(graph):
        weight = op.inputs[index]
        if weight not in densified:
            tensor = graph.tensors[weight]
            buffer = graph.buffers[tensor.buffer]
            dense = np.frombuffer(buffer.data.tobytes(), np.float32).reshape(tensor.shape)
            zeros = int(np.sum(dense == 0))
            if zeros < MIN_ZERO_FRACTION * dense.size:
                continue
            block_rows, values, params = smallest_encoding(dense)
            size = encoded_bytes(values, params)
            if size >= dense.nbytes:
                continue
            buffer.data = values.view(np.uint8)
            tensor.sparsity = params
            out = graph.add_tensor(f"{tensor.name}/densified", tensor.shape, np.float32)
            graph.add_op("DENSIFY", [weight], [out])
            graph.operators.insert(0, graph.operators.pop())
            densified[weight] = out
            entries.append({"tensor": tensor.name, "shape": list(tensor.shape), "zeros": zeros,
                            "sparsity": zeros / math.prod(tensor.shape), "stored_block": f"{block_rows}x1",
                            "bytes": size, "dense_bytes": int(dense.nbytes)})
        op.inputs[index] = densified[weight]
    return entries
