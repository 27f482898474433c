"""Remove the layout transposes between channels-last int8 kernels (a Relax rewrite).

qdq.py emits each int8 conv on CPUs channels-last between two transposes: NCHW -> NHWC in
front, NHWC -> NCHW behind, so the rest of the graph keeps the model's NCHW layout. Between
two convs (and across the per-tensor elementwise ops between them: a residual add's
dequantize / add / quantize), those transposes cancel. This pass moves each transpose down
through such elementwise ops, when all their tensor operands carry the same transpose, and
drops a transpose that meets its inverse. What remains is one transpose at each end of a
channels-last run (the model input, the classifier head).

Measured on MobileNet v2 224 for x86_64-int8-vnni (`edgec analyze`): the transposes and
per-conv packing took about 2 ms of the module's 9 ms.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

# Elementwise ops that commute with a transpose of all their tensor operands (the others
# must be scalars). quantize/dequantize only with per-tensor parameters (see _scalar).
_ELEMENTWISE = {"relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.maximum",
                "relax.minimum", "relax.clip", "relax.astype", "relax.nn.relu", "relax.sigmoid",
                "relax.quantize", "relax.dequantize", "relax.round", "relax.floor"}
_PERMUTE = "relax.permute_dims"


def _op_name(call: relax.Call) -> str | None:
    return call.op.name if isinstance(call.op, tvm.ir.Op) else None


def _scalar(expr: relax.Expr) -> bool:
    """A rank-0 tensor or a prim value (a quantize's scale, a clip bound)."""
    ty = getattr(expr, "ty", None)
    return not isinstance(ty, relax.TensorType) or ty.ndim == 0


class _FunctionRewriter(PyExprMutator):
    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.mod = mod

    def transform(self) -> tvm.IRModule:
        for gvar, func in self.mod.functions_items():
            if isinstance(func, relax.Function):
                self.builder_.update_func(gvar, self.visit_expr(func))
        return self.builder_.get()

    def _transposed(self, expr: relax.Expr) -> tuple[relax.Expr, list[int]] | None:
        """(source, axes) when `expr` is a variable bound to permute_dims(source, axes)."""
        if not isinstance(expr, relax.Var):
            return None
        bound = self.lookup_binding(expr)
        if isinstance(bound, relax.Call) and _op_name(bound) == _PERMUTE and bound.attrs.axes is not None:
            return bound.args[0], [int(a) for a in bound.attrs.axes]
        return None


@mutator
class _SinkTransposes(_FunctionRewriter):
    def visit_call_(self, call: relax.Call) -> relax.Expr:  # noqa: N802 - TVM's visitor name
        call = self.visit_expr_post_order(call)
        name = _op_name(call)
        if name == _PERMUTE and call.attrs.axes is not None:
            inner = self._transposed(call.args[0])
            if inner is not None:
                source, first = inner
                axes = [first[a] for a in call.attrs.axes]
                return source if axes == list(range(len(axes))) else relax.op.permute_dims(source, axes)
            return call
        if name in _ELEMENTWISE:
            sunk = self._sunk(call)
            return call if sunk is None else sunk
        return call

    def _sunk(self, call: relax.Call) -> relax.Expr | None:
        """op(transpose(a, p), scalars...) -> transpose(op(a, scalars...), p)."""
        args, axes = [], None
        for arg in call.args:
            if _scalar(arg):
                args.append(arg)
                continue
            inner = self._transposed(arg)
            if inner is None or (axes is not None and inner[1] != axes):
                return None
            args.append(inner[0])
            axes = inner[1]
        if axes is None:
            return None
        moved = self.builder_.emit(relax.Call(call.op, args, call.attrs, call.ty_args))
        return relax.op.permute_dims(moved, axes)


@mutator
class _NarrowTransposes(_FunctionRewriter):
    """A transpose that sank through a dequantize and met no inverse (e.g. at a float model
    output) goes back above it, onto the int8 tensor: a quarter of the bytes to move."""

    def visit_call_(self, call: relax.Call) -> relax.Expr:  # noqa: N802
        call = self.visit_expr_post_order(call)
        if _op_name(call) != _PERMUTE or not isinstance(call.args[0], relax.Var):
            return call
        bound = self.lookup_binding(call.args[0])
        if not (isinstance(bound, relax.Call) and _op_name(bound) == "relax.dequantize"
                and all(_scalar(a) for a in bound.args[1:])):
            return call
        narrow = self.builder_.emit(relax.op.permute_dims(bound.args[0], call.attrs.axes))
        return relax.Call(bound.op, [narrow, *bound.args[1:]], bound.attrs, bound.ty_args)


@tvm.transform.module_pass(opt_level=0, name="EdgecSinkTransposes")
def sink_transposes(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    dce = relax.transform.DeadCodeElimination()
    return dce(_NarrowTransposes(dce(_SinkTransposes(mod).transform())).transform())
