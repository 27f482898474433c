"""A kernel's FLOPs as the model defines them, kept on the PrimFunc through rewrites.

TVM's estimate counts every arithmetic op in the loop nest. After a schedule it would also
count init and accumulator-copy blocks, and after fast_math each exp as the ~20 operations
of its polynomial, inflating the achieved GFLOP/s `edgec analyze` reports. So the first
rewrite of a PrimFunc records the estimate of its original form (FLOPS_ATTR) and every
later one keeps it.
"""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx

FLOPS_ATTR = "edgec.flops"


def kernel_flops(func: tirx.PrimFunc) -> int:
    """FLOPS_ATTR when a rewrite recorded it, else TVM's estimate (0 when it has none)."""
    if func.attrs is not None and FLOPS_ATTR in func.attrs:
        return int(func.attrs[FLOPS_ATTR])
    try:
        return int(s_tir.analysis.estimate_tir_flops(tvm.IRModule({"main": func})))
    except Exception:  # noqa: BLE001  (an op without a FLOP count, e.g. a pure copy)
        return 0


def with_flops_of(rewritten: tirx.PrimFunc, original: tirx.PrimFunc, attrs: dict | None = None) -> tirx.PrimFunc:
    """`rewritten` carrying `original`'s FLOPs (and `attrs`)."""
    return rewritten.with_attrs({FLOPS_ATTR: tirx.IntImm("int64", kernel_flops(original)), **(attrs or {})})
