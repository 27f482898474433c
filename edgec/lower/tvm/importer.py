"""ONNX -> Relax import for the TVM lowering, with errors that name the node.

Apache TVM's Relax ONNX frontend reports unsupported ops as one set of op names (no node
names), ignores an op's domain (a custom-domain `Relu` would silently become an ONNX Relu),
and when a converter fails it prints the inputs and re-raises a bare exception. This module
checks every node up front against the frontend's converter map, so a user gets ONE
`UnsupportedOpsError` listing every node that cannot be imported, and turns a converter's
failure into an error naming the node it failed on.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import onnx.inliner
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend

from edgec.errors import InputShapeError, UnsupportedOpsError
from edgec.lower.tvm import op_checks
from edgec.onnx_walk import all_nodes

# The ONNX standard domains, and Microsoft's contrib domain whose ops (FastGelu,
# SkipLayerNormalization, ...) the frontend converts under their plain names.
_ONNX_DOMAINS = ("", "ai.onnx")
_CONTRIB_DOMAINS = ("com.microsoft",)
_BUILTIN_OPS = op_checks.BUILTIN_OPS


def import_onnx(proto: onnx.ModelProto, target_name: str) -> tvm.IRModule:
    """The Relax module for `proto`, with its weights bound as constants (not inputs)."""
    if proto.functions:
        # Model-local functions are called through a custom domain the frontend cannot see into.
        proto = onnx.inliner.inline_local_functions(proto)
    else:
        proto = _copy(proto)  # nodes get names below; leave the caller's model alone
    _name_unnamed_nodes(proto.graph)
    _widen_4bit_initializers(proto.graph)
    _check_static_inputs(proto.graph)
    unsupported = find_unsupported_nodes(proto.graph)
    if unsupported:
        raise UnsupportedOpsError(target_name, "tvm", unsupported)

    importer = _NodeTrackingImporter(
        shape_dict=None, dtype_dict=None, keep_params_in_input=False, sanitize=True
    )
    # The frontend prints a converter's inputs (whole weight tensors) before re-raising and
    # warns about renamed inputs; keep both off the user's terminal.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return importer.from_onnx(proto.graph, _onnx_opset(proto))
        except Exception as exc:  # noqa: BLE001 - any converter failure becomes a user-facing error
            node = importer.current_node
            if node is None:
                raise UnsupportedOpsError(
                    target_name, "tvm", [("<graph>", "?", f"Apache TVM's ONNX import failed: {short_reason(exc)}")]
                ) from exc
            name, op_type = node
            why = (
                f"Apache TVM's ONNX converter for {op_type} failed: {short_reason(exc)}. "
                "Rewrite the node into simpler ONNX ops or build only the tflite format"
            )
            raise UnsupportedOpsError(target_name, "tvm", [(name, op_type, why)]) from exc


def find_unsupported_nodes(graph: onnx.GraphProto) -> list[tuple[str, str, str]]:
    """(node name, op type, why) for every node, subgraphs included, the frontend cannot convert."""
    convert_map = onnx_frontend._get_convert_map()
    constants = {t.name: t for t in graph.initializer}
    found = []
    for node in all_nodes(graph):
        if node.domain not in _ONNX_DOMAINS + _CONTRIB_DOMAINS:
            found.append((node.name, node.op_type, (
                f"custom domain '{node.domain}': Apache TVM's ONNX frontend converts only standard "
                "ONNX ops; decompose it into standard ops or build only the tflite format"
            )))
        elif node.op_type not in convert_map and node.op_type not in _BUILTIN_OPS:
            found.append((node.name, node.op_type, (
                f"Apache TVM {tvm.__version__}'s Relax ONNX frontend has no converter for "
                f"{node.op_type}; rewrite it into supported ops or build only the tflite format"
            )))
        elif (why := op_checks.check_node(node, constants)) is not None:
            found.append((node.name, node.op_type, why))
    return found


class _NodeTrackingImporter(onnx_frontend.ONNXGraphImporter):
    """The stock importer, remembering which node it is converting so a failure can name it.

    Built directly rather than through relax_onnx.from_onnx, which creates its own importer
    (and only adds onnx.checker warnings and opset detection, done here by _onnx_opset).
    """

    current_node: tuple[str, str] | None = None

    def _convert_operator(self, op_name, inputs, attrs, opset):
        self.current_node = (attrs["tvm_custom"]["name"], op_name)
        if op_name == "Clip" and opset >= 11:
            clipped = _clip_with_constant_bounds(self.bb, inputs)
            if clipped is not None:
                return clipped
        return super()._convert_operator(op_name, inputs, attrs, opset)


def _clip_with_constant_bounds(bb, inputs):
    """Clip(x, min, max) with constant float bounds as Relax maximum/minimum; else None.

    The stock converter guards every bound with where(isnan(bound), -/+inf, bound) (a NaN
    bound means "unbounded"). On constant bounds FoldConstant then compiles one LLVM function
    per guard, about 60 ms each: MobileNet v2's 35 ReLU6 cost 4 s of its 5 s Relax pipeline.
    Resolving the guard here with numpy gives the same graph without the compile time.
    """
    x, lo, hi = inputs[0], inputs[1], inputs[2]
    dtype = getattr(x.ty, "dtype", None)
    if dtype is None or not str(dtype).startswith(("float", "bfloat")):
        return None
    bounds = []
    for bound in (lo, hi):
        if bound is None:
            bounds.append(None)
            continue
        if not isinstance(bound, tvm.ir.expr.GenericConst) or not hasattr(bound.value, "numpy"):
            return None
        value = bound.value.numpy()
        if value.size != 1:
            return None
        bounds.append(None if np.isnan(value).item() else value.reshape(()))
    result = x
    if bounds[0] is not None:
        result = bb.emit(relax.op.maximum(result, relax.const(bounds[0], str(dtype))))
    if bounds[1] is not None:
        result = bb.emit(relax.op.minimum(result, relax.const(bounds[1], str(dtype))))
    return result




def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    return copy


def _name_unnamed_nodes(graph: onnx.GraphProto) -> None:
    # The importer knows a node only by its name; give unnamed nodes the label
    # edgec.ir.node_label shows users, so errors point at something findable.
    for node in all_nodes(graph):
        if not node.name:
            node.name = f"{node.op_type}->{node.output[0] if node.output else '?'}"


# 4-bit integer types -> the 8-bit type that holds the same values.
_WIDENED = {onnx.TensorProto.INT4: onnx.TensorProto.INT8, onnx.TensorProto.UINT4: onnx.TensorProto.UINT8}


def _widen_4bit_initializers(graph: onnx.GraphProto) -> None:
    """INT4/UINT4 initializers (int4 weights and their zero points) as INT8/UINT8.

    The frontend copies an int4 array's unpacked bytes into a packed int4 tensor (a size
    mismatch). The values are unchanged, and a DequantizeLinear's input and zero point widen
    together, so the graph computes the same; the int8 lowering then runs int4 weights in
    its int8 kernels.
    """
    for init in graph.initializer:
        if init.data_type in _WIDENED:
            array = onnx.numpy_helper.to_array(init)
            wide = onnx.helper.tensor_dtype_to_np_dtype(_WIDENED[init.data_type])
            init.CopyFrom(onnx.numpy_helper.from_array(array.astype(wide), init.name))
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type in _WIDENED:
            tensor_type.elem_type = _WIDENED[tensor_type.elem_type]


def _check_static_inputs(graph: onnx.GraphProto) -> None:
    initializers = {t.name for t in graph.initializer}
    for value in graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
        if not value.type.tensor_type.HasField("shape") or any(not isinstance(d, int) for d in shape):
            raise InputShapeError(
                f"input '{value.name}' has dynamic shape {shape}; TVM needs static shapes. "
                "Pass --input-shape (e.g. --input-shape 1,3,224,224)"
            )


def _onnx_opset(proto: onnx.ModelProto) -> int:
    for entry in proto.opset_import:
        if entry.domain in _ONNX_DOMAINS:
            return entry.version
    return 1


def short_reason(exc: BaseException) -> str:
    """An exception's message without the C++ backtrace TVM errors carry before it."""
    lines = [ln.strip() for ln in (str(exc) or type(exc).__name__).splitlines() if ln.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    reason = reason.rstrip(".")
    return reason if len(reason) < 500 else reason[:500] + "..."
