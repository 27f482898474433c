"""Gather: embedding lookups with run-time token ids, and constant-index picks.

Run-time indices (int64 `input_ids` in every transformers model) become one GATHER over the
table. TFLite's GATHER reads int32 or int64 positions but no negative ones, which ONNX allows
(-1 is the last row): FLOOR_MOD by the axis length wraps them, and casting int64 ids to
int32 first keeps both ops on their common int32 kernels. The ids are a few hundred
integers, so the two ops cost nothing next to one matmul. GATHER rather than
EMBEDDING_LOOKUP: neither is delegated to XNNPACK, and GATHER takes any axis and index rank.

GatherElements (torch.gather; RoBERTa picks token-type ids by its run-time position ids) is one
GATHER_ND: each output element's coordinates are the constant grid of its own position, with
the index tensor (wrapped like Gather's) in the gathered axis's slot.

Constant indices: a scalar is a one-wide SLICE and a RESHAPE (bytes in place); 1-D indices
keep the data's layout. (The rewrite_constant_gathers pass has already turned gathers that
are really reshapes or slices into those.)
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from ai_edge_litert import schema_py_generated as schema

from edgec.ir import numpy_dtype, static_shape
from edgec.lower.tflite import layout
from edgec.lower.tflite.builder import tensor_type
from edgec.lower.tflite.common import attr, const_input
from edgec.lower.tflite.context import LoweringContext
from edgec.lower.tflite.registry import ANY_DTYPE, NUMERIC, visitor


def _check_gather(node: ir.Node) -> str | None:
    """int32/int64 indices, constant or computed at run time (token ids); run-time ones must lie in
    [-n, n) for an axis of length n (ONNX's range; TFLite fails the invoke past it)."""
    indices = node.inputs[1]
    if const_input(node, 1) is None and str(numpy_dtype(indices)) not in ("int32", "int64"):
        return f"indices '{indices.name}' are {numpy_dtype(indices)}; expected int32 or int64"
    return None


@visitor("Gather", check=_check_gather, dtypes=ANY_DTYPE)
def lower_gather(node: ir.Node, ctx: LoweringContext) -> None:
    data = node.inputs[0]
    shape = ctx.shape(data)
    axis = attr(node, "axis", 0) % len(shape)
    indices = const_input(node, 1)
    if indices is None:
        _gather_run_time(ctx, node, axis)
        return
    indices = np.where(indices < 0, indices + shape[axis], indices)
    perm = ctx.perm(data)
    src = ctx.tensor(data, perm)
    if indices.ndim == 1:
        # 1-D indices keep the rank, so the gathered axis keeps its place in the layout.
        out = ctx.define(node.outputs[0], perm)
        ctx.emit("GATHER", [src, ctx.int32(indices, "indices")], [out],
                 schema.GatherOptionsT(axis=layout.axis_in(perm, axis)))
        return
    if indices.ndim > 1:
        out = ctx.define(node.outputs[0])
        ctx.emit("GATHER", [ctx.tensor(data), ctx.int32(indices, "indices")], [out], schema.GatherOptionsT(axis=axis))
        return
    # x[..., i, ...] is a one-wide SLICE and a RESHAPE that drops the axis (bytes in place).
    begin, size = [0] * len(shape), list(shape)
    begin[axis], size[axis] = int(indices), 1
    sliced = ctx.temp_like(src, layout.permute(size, perm), hint="slice")
    ctx.emit("SLICE", [src, ctx.int32(layout.permute(begin, perm), "begin"),
                       ctx.int32(layout.permute(size, perm), "size")], [sliced])
    out_perm = layout.drop_axes(perm, [axis])
    out = ctx.define(node.outputs[0], out_perm)
    ctx.emit("RESHAPE", [sliced, ctx.int32(layout.permute(ctx.shape(node.outputs[0]), out_perm))], [out])


def _wrapped_run_time_ids(ctx: LoweringContext, indices: ir.Value, axis_length: int) -> int:
    """Run-time ids as int32 in [0, axis_length): TFLite's gathers take int32, and FLOOR_MOD
    gives negative ids ONNX's meaning (counted from the end)."""
    ids = ctx.tensor(indices)
    id_shape = static_shape(indices)
    if numpy_dtype(indices) != np.int32:
        narrowed = ctx.temp(id_shape, np.int32, hint="ids_int32")
        ctx.emit("CAST", [ids], [narrowed], schema.CastOptionsT(inDataType=tensor_type(numpy_dtype(indices)),
                                                                 outDataType=tensor_type(np.int32)))
        ids = narrowed
    wrapped = ctx.temp(id_shape, np.int32, hint="ids_wrapped")
    ctx.emit("FLOOR_MOD", [ids, ctx.int32(axis_length, "axis_length")], [wrapped])
    return wrapped


def _gather_run_time(ctx: LoweringContext, node: ir.Node, axis: int) -> None:
    data, indices = node.inputs[0], node.inputs[1]
    wrapped = _wrapped_run_time_ids(ctx, indices, ctx.shape(data)[axis])
    out = ctx.define(node.outputs[0])
    ctx.emit("GATHER", [ctx.tensor(data), wrapped], [out], schema.GatherOptionsT(axis=axis))


def _check_gather_elements(node: ir.Node) -> str | None:
    """int32/int64 indices, constant or computed at run time; run-time ones must lie in [-n, n) for an axis of length n."""
    return _check_gather(node)


@visitor("GatherElements", check=_check_gather_elements, dtypes=NUMERIC)
def lower_gather_elements(node: ir.Node, ctx: LoweringContext) -> None:
    data, indices = node.inputs[0], node.inputs[1]
    rank = len(ctx.shape(data))
    axis = attr(node, "axis", 0) % rank
    axis_length = ctx.shape(data)[axis]
    id_shape = tuple(static_shape(indices))
    constant = const_input(node, 1)
    if constant is not None:
        ids = ctx.int32(np.where(constant < 0, constant + axis_length, constant).reshape(*id_shape, 1), "ids")
    else:
        wrapped = _wrapped_run_time_ids(ctx, indices, axis_length)
        ids = ctx.temp((*id_shape, 1), np.int32, hint="ids_column")
        ctx.emit("RESHAPE", [wrapped, ctx.int32((*id_shape, 1))], [ids])
    # Coordinates [..., rank]: every other axis's coordinate is the element's own position there.
    grid = np.indices(id_shape, dtype=np.int32)[..., None]
    columns = [ids if k == axis else ctx.int32(grid[k], f"coord{k}") for k in range(rank)]
    coords = ctx.temp((*id_shape, rank), np.int32, hint="coords")
    ctx.emit("CONCATENATION", columns, [coords], schema.ConcatenationOptionsT(axis=rank))
    out = ctx.define(node.outputs[0])
    ctx.emit("GATHER_ND", [ctx.tensor(data), coords], [out])
