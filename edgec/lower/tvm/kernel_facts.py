"""Facts about a kernel the CPU schedules decide on (the target's vector width and registers,
whether a conv block is channels-last or grouped) and the vector-loop step both take. Shared
by the default schedule (schedules.py) and block fusion's tiled schedule (fusion.py)."""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx


def vector_lanes(target: tvm.target.Target, dtype_bits: int = 32) -> int:
    """SIMD lanes for `dtype_bits` elements on an llvm target, from its mtriple/mcpu/mattr."""
    triple = str(target.attrs.get("mtriple", ""))
    mattr = [str(a) for a in target.attrs.get("mattr", [])]
    mcpu = str(target.attrs.get("mcpu", ""))
    if triple.startswith(("aarch64", "arm")):
        bits = 128
    elif "+avx512f" in mattr or mcpu in ("x86-64-v4", "skylake-avx512", "cascadelake", "icelake-server", "sapphirerapids",
                                         "znver4"):
        bits = 512
    elif "+avx2" in mattr or mcpu in ("x86-64-v3", "haswell", "skylake", "znver2", "znver3"):
        bits = 256
    else:
        bits = 128  # x86_64 baseline SSE2; LLVM splits wider vectors itself
    return max(1, bits // dtype_bits)


def vector_registers(target: tvm.target.Target) -> int:
    """Architectural SIMD registers: 32 on AArch64 and with AVX-512, 16 otherwise (AVX2, SSE)."""
    triple = str(target.attrs.get("mtriple", ""))
    return 32 if triple.startswith("aarch64") or vector_lanes(target) >= 16 else 16


def vectors_per_row(target: tvm.target.Target, rows: int) -> int:
    """Vectors of output channels per register-block row: two (each broadcast input value
    feeds two FMAs) while rows x 2 accumulators, two weight vectors and the broadcast fit the
    registers, else one. On AVX2, 7 rows x 2 spilled two accumulators per reduction step."""
    return 2 if 2 * rows + 3 <= vector_registers(target) else 1


def channels_last(stmt) -> bool:
    """A 4-D output whose innermost iterator (NHWC's channels) also indexes the weights."""
    region = stmt.writes[0].region
    inner = region[-1].min if len(region) == 4 else None
    return isinstance(inner, tirx.Var) and indexes_weights(stmt, inner)


def indexes_weights(stmt, var) -> bool:
    """Whether `var` indexes the block's second operand (a conv's weights, a matmul's B)."""
    return len(stmt.reads) >= 2 and any(uses(r.min, var) for r in stmt.reads[1].region)


def grouped_output_channels(stmt) -> int | None:
    """Output channels per group of a channels-last grouped conv (HWIO weights [KH, KW, C/g, O]
    read by NHWC data of C channels), or None for a dense or depthwise one."""
    if len(stmt.reads) < 2 or len(stmt.reads[1].source.shape) != 4 or len(stmt.reads[0].source.shape) != 4:
        return None
    try:
        in_per_group, out = int(stmt.reads[1].source.shape[2]), int(stmt.reads[1].source.shape[3])
        channels = int(stmt.reads[0].source.shape[3])
    except TypeError:
        return None
    groups = channels // in_per_group if in_per_group else 1
    if groups <= 1 or in_per_group == 1 or out % groups:
        return None
    return out // groups


def uses(expr, var) -> bool:
    return any(v.same_as(var) for v in tirx.analysis.undefined_vars(expr))


def largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def vector_factor(extent: int, lanes: int) -> int:
    """A power-of-two divisor of `extent` for the vector loop (no tail), `lanes` at most.
    Measured: odd-width LLVM vectors (<28 x float> for W=28) ran 10x slower than 4-wide ones."""
    for f in (lanes, lanes // 2, lanes // 4, 2):
        if f > 1 and extent % f == 0:
            return f
    return 1


def vectorize_below(sch: s_tir.Schedule, block, anchor, lanes: int) -> None:
    """Fuse the loops `block` got under `anchor` and vectorize their inner part."""
    loops = list(sch.get_loops(block))
    anchor_stmt = sch.get(anchor)
    index = next(i for i, l in enumerate(loops) if sch.get(l).same_as(anchor_stmt))
    below = loops[index + 1:]
    if not below:
        return
    fused = sch.fuse(*below) if len(below) > 1 else below[0]
    extent = loop_extent(sch, fused)
    if extent is None:
        return
    factor = vector_factor(extent, lanes)
    if factor > 1:
        _, inner = sch.split(fused, [None, factor])
        sch.vectorize(inner)


def loop_extent(sch: s_tir.Schedule, loop) -> int | None:
    """A loop's constant extent, or None when it is dynamic."""
    extent = sch.get(loop).extent
    return int(extent) if isinstance(extent, tirx.IntImm) else None
