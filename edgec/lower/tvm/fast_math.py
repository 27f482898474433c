"""Vectorizable float32 exp, sigmoid, tanh and erf for the CPU lowering.

LLVM has no vector libm here: TVM emits `llvm.exp` for T.exp (and builds T.sigmoid and T.tanh
from it, T.erf calls libm's erff), and LLVM scalarizes a vector of those into one libm call
per lane. SiLU (x * sigmoid(x)) then costs more than the conv it follows: ConvFirst's
56x56x128 expand conv ran 1.34 ms with its SiLU epilogue against 0.37 ms for the equally
large project conv without one (`edgec analyze`, x86_64-fp32).

This pass rewrites those calls in every PrimFunc into plain arithmetic that vectorizes:
  exp      Cephes-style: 2^n by building the float's exponent bits, a degree-7 polynomial
           for the rest (TVM's topi.fast_exp; inputs above 88 saturate at exp(88), relative error <1e-6)
  sigmoid  1 / (1 + exp(-x)) with the exp above
  tanh     Eigen's rational approximation on [-9, 9] (topi.fast_tanh)
  erf      Eigen's rational approximation on [-4, 4] (topi.fast_erf)
The constants are TVM's (topi/elemwise.h); tests check each function against numpy/scipy.
It runs at the end of the legalize stage, so tuning tasks and the database see the same
PrimFuncs the schedule stage does. Other dtypes keep TVM's calls.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import tirx

from edgec.lower.tvm.flops import with_flops_of

_F32 = "float32"

_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
             5.0000001201e-1)
_TANH_NUM = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
             1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_DEN = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
_ERF_NUM = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
            -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_DEN = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
            -1.42647390514189e-02)


def _c(value: float) -> tirx.FloatImm:
    return tirx.const(value, _F32)


def _horner(x, coefficients) -> tirx.PrimExpr:
    """c0 * x^k + ... + ck, highest power first."""
    acc = _c(coefficients[0])
    for c in coefficients[1:]:
        acc = acc * x + _c(c)
    return acc


def fast_exp(x) -> tirx.PrimExpr:
    # Above 88.0 the rounded exponent n would reach 128 (inf): saturate at exp(88) = 1.7e38.
    x = tirx.max(tirx.min(x, _c(88.0)), _c(-88.3762626647949))
    n = tirx.floor(x * _c(1.44269504088896341) + _c(0.5))
    f = x - n * _c(0.6931471805599453)
    y = _horner(f, _EXP_POLY) * f * f + f + _c(1.0)
    two_n = tirx.reinterpret(_F32, tirx.shift_left(tirx.Cast("int32", n + _c(127.0)), tirx.const(23, "int32")))
    return two_n * y


def fast_sigmoid(x) -> tirx.PrimExpr:
    return _c(1.0) / (_c(1.0) + fast_exp(-x))


def _odd_rational(x, numerator, denominator) -> tirx.PrimExpr:
    x2 = x * x
    return x * _horner(x2, numerator) / _horner(x2, denominator)


def fast_tanh(x) -> tirx.PrimExpr:
    return _odd_rational(tirx.max(tirx.min(x, _c(9.0)), _c(-9.0)), _TANH_NUM, _TANH_DEN)


def fast_erf(x) -> tirx.PrimExpr:
    return _odd_rational(tirx.max(tirx.min(x, _c(4.0)), _c(-4.0)), _ERF_NUM, _ERF_DEN)


_REWRITES = {"tirx.exp": fast_exp, "tirx.sigmoid": fast_sigmoid, "tirx.tanh": fast_tanh,
             "tirx.erf": fast_erf}


def rewrite_prim_func(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """`func` with its float32 exp/sigmoid/tanh/erf calls replaced by the expressions above."""

    def replace(call):
        op = getattr(call.op, "name", None)
        if op in _REWRITES and str(call.ty) == _F32 and len(call.args) == 1:
            return _REWRITES[op](call.args[0])
        return call

    return tvm_ffi.structural_map(func, [(tvm.ir.Call, replace)], order="post")


@tvm.transform.module_pass(opt_level=0, name="EdgecFastMath")
def fast_math(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    for gv, func in list(mod.functions.items()):
        if isinstance(func, tirx.PrimFunc):
            rewritten = rewrite_prim_func(func)
            if not rewritten.same_as(func):  # untouched kernels keep their tuning workload as it was
                mod[gv] = with_flops_of(rewritten, func)
    return mod
