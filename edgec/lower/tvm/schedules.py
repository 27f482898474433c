"""Default CPU schedules: what an untuned TVM module runs with (no MetaSchedule database).

TVM 0.27 ships no conv schedules for CPU: dlight's CPU rules are GEMV and Reduction only,
TOPI's x86/arm schedules went with TE scheduling, and the wheel has no DNNL/BLAS offload.
Legalized PrimFuncs therefore run as naive loop nests (MobileNet v2: ~20x XNNPACK's time).
This rule gives every kernel with one reduction (dense and depthwise conv2d, matmul,
pooling, mean) the register-blocked shape of a hand-written CPU kernel:

    outer spatial loops..., reduction loops..., rows (unrolled), vector (vectorized)

- vector runs over the innermost non-unit output axis, a power-of-two width (odd-width LLVM
  vectors, <28 x float> for W=28, measured 10x slower). Float convs reach here channels-last
  (pipeline.CHANNELS_LAST): the vector is output channels, contiguous in the output and in
  the HWIO weights, two registers wide; rows are output columns (W), each one vector
  accumulator fed by one broadcast input value; qdq.py emits int8 convs channels-last too
  (all but those on dot-product instructions). NCHW convs (block fusion, a model whose layout
  could not be converted) vectorize over W and take output channels as rows: one input
  vector load feeds one FMA per row.
  Matmul: the vector over columns, rows over rows. The rows x vector tile accumulates in a
  local buffer (registers once LLVM promotes it) and is stored once per tile.
- The epilogue (bias, ReLU6, residual add) is inlined into one block and runs per row
  block, while that block's output is in cache.
- Padding stays its own pass (inlined, its bounds checks would sit in the innermost loop),
  except before a strided channels-last conv, whose padded input is mostly never read.
- NCHW depthwise/grouped convs keep TVM's loop nest: with stride 2 the NCHW input reads are
  gathers, and this tiling measured 1-3x slower than LLVM's own code for them.

int8 convs in int8_dot's packed form (qdq.py emits it on targets with AVX-512 VNNI or ARM
+dotprod) get int8_dot's own schedule, whose inner products become `vpdpbusd` / `sdot`.

Kernels without a reduction (reshapes, elementwise) are flattened and vectorized. Outer
loops are marked parallel (TVM's thread pool; a 1-thread run is unaffected). A PrimFunc
the rule cannot transform (e.g. softmax's two reductions) is left as it was. A tuning
database replaces these schedules task by task.

Measured on MobileNet v2 224 fp32 (this 2-core Xeon, 1 thread, `edgec analyze`): 227 ms of
kernel time untouched -> 43 ms with this rule on NCHW -> 15 ms channels-last.
"""

from __future__ import annotations

import logging
import math

import tvm
from tvm import s_tir, tirx
from tvm.s_tir import dlight as dl
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.schedule.schedule import ScheduleError

from edgec.lower.tvm import int8_dot
from edgec.lower.tvm.flops import with_flops_of
from edgec.lower.tvm.kernel_facts import (channels_last, grouped_output_channels, indexes_weights,
                                          largest_divisor_at_most, loop_extent, uses, vector_factor, vector_lanes,
                                          vectorize_below, vectors_per_row)
from edgec.lower.tvm.fusion import KIND_ATTR

# Output channels per register block (vector accumulators per input load).
CHANNEL_BLOCK = 8
_log = logging.getLogger(__name__)




class CPUKernels(dl.cpu.base.CPUScheduleRule):
    """The rule above, as a dlight ScheduleRule (see ApplyDefaultSchedule)."""

    def apply(self, func: tirx.PrimFunc, target: tvm.target.Target, _tunable: bool):
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        if func.attrs is not None and KIND_ATTR in func.attrs:
            return None  # a fused block, tiled by fusion.py's own schedule
        sch = s_tir.Schedule(func)
        try:
            dot = int8_dot.dot_product_of(target)
            block = int8_dot.find_dot_block(sch) if dot is not None else None
            if block is not None:
                int8_dot.schedule_int8_dot(sch, block, dot)
                return sch
            if _schedule(sch, target):
                return sch
        except (ScheduleError, tvm.error.InternalError) as exc:  # TVM reports some as internal errors
            _log.debug("default CPU schedule left a kernel as TVM wrote it: %s", str(exc).splitlines()[0])
        return None


@tvm.transform.module_pass(opt_level=0, name="EdgecDefaultCPUSchedule")
def default_cpu_schedule(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """The schedule stage's pass for llvm targets: CPUKernels on every unscheduled PrimFunc.

    A scheduled kernel keeps the FLOPs of its unscheduled form (FLOPS_ATTR): TVM's estimate
    would also count the init and accumulator-copy blocks the schedule adds."""
    target = tvm.target.Target.current(allow_none=False)
    rule = CPUKernels()
    dot = int8_dot.dot_product_of(target)
    for gv, func in list(mod.functions.items()):
        if not isinstance(func, tirx.PrimFunc) or (func.attrs is not None and func.attrs.get("tirx.is_scheduled")):
            continue
        sch = rule.apply(func, target, False)
        if sch is not None:
            # The dot-product blocks int8_dot's schedule marked become the instruction.
            scheduled = sch.mod["main"]
            if dot is not None:
                scheduled = int8_dot.emit_dot_products(scheduled, dot)
            mod[gv] = with_flops_of(scheduled, func, {"tirx.is_scheduled": True})
    return mod


def _schedule(sch: s_tir.Schedule, target) -> bool:
    blocks = normalize_prim_func(sch)
    if blocks is None:
        return False
    reductions = [b for b in blocks if b.is_reduction()]
    if len(reductions) > 1:
        return False
    if not reductions:
        for info in _inline_elementwise(sch, blocks):
            _vectorize_injective(sch, info.block_rv, target)
        return True
    red = reductions[0]
    if _is_depthwise(sch.get(red.block_rv)) and not channels_last(sch.get(red.block_rv)):
        return False
    index = next(i for i, b in enumerate(blocks) if b.block_rv.same_as(red.block_rv))
    producers, consumers = blocks[:index], blocks[index + 1:]
    red_stmt = sch.get(red.block_rv)
    for info in producers:  # input copies are inlined; padding stays a separate pass
        if not _has_if_then_else(sch, info.block_rv) or _pad_worth_inlining(sch.get(info.block_rv), red_stmt):
            _try(sch.compute_inline, info.block_rv)
    epilogue = None
    if consumers:
        remaining = [c for c in consumers[:-1] if not _try(sch.compute_inline, c.block_rv)]
        if remaining:
            return False  # an epilogue that is not elementwise (e.g. a second pass over the output)
        epilogue = consumers[-1].block_rv
    _tile_reduction(sch, red.block_rv, epilogue, target)
    # Padding is left as TVM wrote it: measured, parallel+vectorized it ran slower.
    return True


def _tile_reduction(sch: s_tir.Schedule, block, epilogue, target) -> None:
    info = dl.analysis.get_sblock_info(sch, block)
    kinds = "".join(i.kind for i in info.iters)
    n_spatial = len(kinds) - len(kinds.lstrip("S"))
    if "O" in kinds or kinds[n_spatial:].strip("R"):
        raise ScheduleError("iterators are not spatial-then-reduction")
    loops = sch.get_loops(block)
    if len(loops) != len(kinds):
        raise ScheduleError("block is not alone under its loops")
    spatial, reduction = list(loops[:n_spatial]), list(loops[n_spatial:])
    stmt = sch.get(block)
    dims = _output_dims(stmt, n_spatial)  # spatial iterator -> output dimension
    if dims is None or any(loop_extent(sch, loop) is None for loop in loops):
        raise ScheduleError("output not indexed by plain iterators, or dynamic extents")
    rank = len(stmt.writes[0].region)
    lanes = vector_lanes(target, _dtype_bits(sch, block))

    # The register block's rows: 4-D NCHW output: channels (dim 1); NHWC (its innermost axis,
    # the output channels, also indexes the weights): width (dim 2); 2-D (matmul): rows (dim 0).
    position = {d: k for k, d in enumerate(dims)}
    vector_k = max(range(len(dims)), key=lambda k: dims[k])  # innermost output dimension
    channels_last = indexes_weights(stmt, stmt.iter_vars[vector_k].var)
    channel_dim = (2 if channels_last else 1) if rank == 4 else 0 if rank == 2 else None
    channel_k = position.get(channel_dim)
    rows = (largest_divisor_at_most(loop_extent(sch, spatial[channel_k]), CHANNEL_BLOCK)
            if channel_k is not None and channel_k != vector_k else 1)
    # Channels-last: two vectors of output channels per row while the accumulators leave
    # registers for the weights and the broadcast (AVX2's 16: 7 rows x 2 spilled, and one
    # vector ran ConvFirst 1.05x faster); NCHW rows are channels, the vector W.
    width = vectors_per_row(target, rows) if channels_last else 1
    w_factor = vector_factor(loop_extent(sch, spatial[vector_k]), lanes * width)
    per_group = grouped_output_channels(stmt) if channels_last and rank == 4 else None
    if per_group:
        # One group's output channels read the same input channels: a vector within a group
        # reads each input value as one broadcast, one across groups gathers (measured on
        # ConvFirst's group-width-8 3x3 convs: 5 GFLOP/s with 16 lanes across two groups).
        w_factor = vector_factor(math.gcd(loop_extent(sch, spatial[vector_k]), per_group), lanes * width)
    w_outer, w_inner = sch.split(spatial[vector_k], [None, w_factor])
    outer = list(spatial)
    outer[vector_k] = w_outer
    c_inner = None
    if rows > 1:
        outer[channel_k], c_inner = sch.split(spatial[channel_k], [None, rows])
    sch.reorder(*outer, *reduction, *([c_inner] if c_inner is not None else []), w_inner)
    if reduction:
        # Accumulate the c_inner x w_inner tile in a local buffer that LLVM keeps in
        # registers, written to the output once per tile.
        acc = sch.cache_write(block, 0, "local")
        sch.reverse_compute_at(acc, w_outer, preserve_unit_loops=True)
        vectorize_below(sch, acc, w_outer, lanes)
    # Annotations before decompose_reduction, which copies them onto the init loops.
    sch.vectorize(w_inner)
    if c_inner is not None:
        sch.unroll(c_inner)
    for r in reduction[1:]:  # small kernel windows (3x3): unrolled, so their offsets are constants
        if loop_extent(sch, r) <= 7:
            sch.unroll(r)
    # The epilogue runs per channel block, over the whole plane (it reads the tile's output
    # while in cache; at the tile itself its loops would be too short to vectorize).
    anchor = outer[channel_k] if c_inner is not None else outer[-1]
    if epilogue is not None:
        sch.reverse_compute_at(epilogue, anchor, preserve_unit_loops=True)
        vectorize_below(sch, epilogue, anchor, lanes)
    parallel = [loop for loop in outer if loop_extent(sch, loop) > 1][:1]
    if parallel:
        sch.parallel(parallel[0])
    if reduction:
        sch.decompose_reduction(block, reduction[0])


def _pad_worth_inlining(pad, conv) -> bool:
    """Channels-last padding read by a strided conv: written out, the padded input is several
    times the output, and the conv reads only a quarter of it (stride 2). Measured on MobileNet
    v2's stride-2 depthwise convs: 1.4-2x faster inlined; stride 1 ran 1.2x slower inlined."""
    if not channels_last(conv):
        return False
    return _elements(pad.writes[0].source) > 2 * _elements(conv.writes[0].source)


def _elements(buffer) -> int:
    return math.prod(int(d) for d in buffer.shape if isinstance(d, tirx.IntImm))








def _is_depthwise(stmt) -> bool:
    """A grouped/depthwise conv: its data read indexes channels by an output iterator."""
    if len(stmt.writes[0].region) != 4 or not stmt.reads:
        return False
    channel = stmt.writes[0].region[1].min
    data_channel = stmt.reads[0].region[1].min
    return isinstance(channel, tirx.Var) and uses(data_channel, channel)




def _output_dims(stmt, n_spatial: int) -> list[int] | None:
    """For each spatial block iterator, the output dimension it indexes (plain var access)."""
    region = stmt.writes[0].region
    dims = []
    for iv in stmt.iter_vars[:n_spatial]:
        hits = [d for d, r in enumerate(region) if isinstance(r.min, tirx.Var) and r.min.same_as(iv.var)]
        if len(hits) != 1:
            return None
        dims.append(hits[0])
    return dims if dims == sorted(dims) else None


def _vectorize_injective(sch: s_tir.Schedule, block, target) -> None:
    loops = sch.get_loops(block)
    if not loops:
        return
    extents = [loop_extent(sch, loop) for loop in loops]
    if None in extents:
        return
    lanes = vector_lanes(target, _dtype_bits(sch, block))
    inner_extent = extents[-1]
    factor = vector_factor(inner_extent, lanes)
    if factor > 1:
        outer, inner = sch.split(loops[-1], [None, factor])
        sch.vectorize(inner)
        loops = [*loops[:-1], outer]
    if len(loops) > 1 or (loop_extent(sch, loops[0]) or 0) > 1:
        head = sch.fuse(*loops) if len(loops) > 1 else loops[0]
        sch.parallel(head)




def _inline_elementwise(sch: s_tir.Schedule, blocks):
    return dl.base.try_inline_contiguous_spatial(sch, blocks)








def _dtype_bits(sch: s_tir.Schedule, block) -> int:
    """Element width that sets the vector length: 32 bits at least (the arithmetic of an int8
    kernel runs in int32 or float32), except for a kernel that only moves bytes (a pad or
    transpose of int8 tensors), whose vectors then hold a whole register of them: MobileNet
    v2's int8 pads (x86_64-int8-vnni) ran 0.62 ms with 16-byte vectors, 0.58 ms with 64-byte."""
    stmt = sch.get(block)
    if not stmt.writes:
        return 32
    bits = [int(r.source.dtype.bits) for r in (*stmt.reads, *stmt.writes)]
    return 8 if max(bits) == 8 and _moves_only(stmt) else max(32, bits[-1])


def _moves_only(stmt) -> bool:
    """A block whose value is a load, a constant, or a select between them (pad, transpose)."""
    value = stmt.body.value if isinstance(stmt.body, tirx.BufferStore) else None
    if isinstance(value, tvm.ir.TensorLoad):
        return True
    return (isinstance(value, tvm.ir.Call) and getattr(value.op, "name", "") == "tirx.if_then_else"
            and all(isinstance(a, (tvm.ir.TensorLoad, tirx.IntImm)) for a in value.args[1:]))


def _has_if_then_else(sch: s_tir.Schedule, block) -> bool:
    return bool(tvm.get_global_func("s_tir.schedule.HasIfThenElse")(sch.get(block)))


def _try(fn, *args) -> bool:
    try:
        fn(*args)
        return True
    except ScheduleError:
        return False
