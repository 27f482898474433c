"""Block fusion in the TVM lowering: one tiled kernel per ConvFirst or MBConv residual block.

Lavin (2024) runs every layer of a residual block in one kernel, tile by tile, so the
expanded intermediate never leaves cache. In Relax that takes two passes, hooked into
lower_tvm's named stages when a target sets `block_fusion: true` (devices.yaml):

  rewrite   FuseBlocks: FuseOpsByPattern groups each block's ops into one Relax function
            (bind_constants=False: FuseTIR fails on bound tensor constants). The backend's
            legalize stage (LegalizeOps -> AnnotateTIROpPattern -> FuseOps -> FuseTIR) then
            turns each group into ONE PrimFunc. It runs after the CPU lowering made the convs
            channels-last (pipeline.CHANNELS_LAST), so the blocks are NHWC.
  schedule  ScheduleFusedBlocks: tiles the block's output and compute_at's every producer
            (the convs, bias adds, activations, padding) under the tile loop, so
            CompactBufferAllocation shrinks each intermediate to a per-tile buffer; tiles
            run in parallel.
              NHWC (the default): tiles of whole output rows. Each conv is register-blocked
              as in a hand-written kernel (output columns x one or two vectors of output
              channels, accumulated in registers), and the stage after it (bias + SiLU, the
              residual add) is applied as its register tile is stored, so the conv's own
              output buffer disappears.
              NCHW (a model whose layout could not be converted): tiles over H and W,
              reduction loops outside the innermost W loop, which is vectorized.

Measured on the ConvFirst net (zoo:convfirst, 224, x86_64-fp32 / x86_64-fp32-fused, default
schedules, 1 thread, `edgec bench unfused.so --vs fused.so`): fused 0.92x the unfused time,
the fused blocks at 55-70 GFLOP/s, 37-40% of the host's measured (AVX-512 BLAS) peak on this
AVX2 target (`edgec analyze`). The unfused convs run near the same rate, and at 224 every
intermediate fits this machine's 2 MiB L2, so fusion saves little traffic here; NCHW fused
blocks had run 1.8x slower than the unfused build.

Blocks (conv biases optional, as BatchNorm folding leaves them):
  ConvFirst   kxk conv -> 1x1 expand -> SiLU (sigmoid * x) -> 1x1 project [-> + input]
              (andravin/spio, scripts/profile_block.py)
  MBConv      [1x1 expand -> ReLU/ReLU6] -> depthwise kxk -> ReLU/ReLU6 -> 1x1 project [-> + input]

A block whose intermediate feeds anything outside it is not fused. TFLite has no equivalent:
XNNPACK runs the same blocks op by op.
"""

from __future__ import annotations

import math

import tvm
from tvm import relax, s_tir, tirx
from tvm.relax.dpl import is_op, wildcard
from tvm.relax.transform import FusionPattern, PatternCheckContext
from tvm.s_tir.schedule.schedule import ScheduleError

from edgec.lower.tvm.calls import kernel_calls
from edgec.lower.tvm.flops import with_flops_of
from edgec.lower.tvm.kernel_facts import (channels_last, grouped_output_channels, largest_divisor_at_most, vector_factor,
                                          vector_lanes, vectorize_below, vectors_per_row)
from edgec.lower.tvm.qdq import static_shape

# Module attribute FuseBlocks leaves for ScheduleFusedBlocks: {fused function name: block kind}.
# FuseTIR names each fused PrimFunc after the Relax function it replaces.
BLOCKS_ATTR = "edgec.fused_blocks"
# PrimFunc attributes the schedule leaves for reports and the analyzer (and FLOPS_ATTR, the
# block's FLOPs before tiling: halo recomputation excluded).
KIND_ATTR = "edgec.block_kind"
TILE_ATTR = "edgec.tile"

# NCHW tile shapes (blocks whose layout could not be converted), measured on x86 (2-core
# EPYC, untuned SSE codegen):
# - MBConv: the depthwise conv reads a halo of the EXPANDED tensor; full-width row strips avoid
#   recomputing it across W (1.5x-2.4x faster than square tiles). Rows are added while a
#   producer's and its consumer's per-tile buffers fit TILE_BUDGET_BYTES (a small core's L2).
# - ConvFirst: the halo is only on the narrow input. Where W splits into 8-lane rows, small
#   tiles whose per-channel accumulators stay in registers were fastest (56x56: 4x8 ran 1.4x
#   faster than 8x8 or 8x28); where it does not (14x14, 28x28), bigger tiles of whole rows,
#   which also re-read the 1x1 weights less often, won (14x14: 7x14 ran 2x faster than 2x14;
#   28x28: 4x28 1.4x faster than 7x14).
TILE_BUDGET_BYTES = 512 * 1024
MAX_ROW_STRIP_W = 64
REGISTER_TILE = 32  # elements per output channel, ConvFirst tiles of 8-lane rows
RAGGED_TILE = 128  # the same, for widths that do not split into 8 lanes
# Vectorized loops: lanes a multiple of 4 (SSE), at most 16; a 56-wide vector loop spilled
# registers and ran 2x slower, a 14-wide one up to 4x slower than 8-wide.
MAX_VECTOR = 16
# Channels-last blocks (the default: float convs run NHWC on CPUs): tiles of whole output
# rows, each conv register-blocked over up to REGISTER_ROWS output columns x two vectors of
# output channels (16 accumulators on AVX2).
ROW_TILE_BYTES = 32 * 1024
REGISTER_ROWS = 8


# ---------------------------------------------------------------- patterns (rewrite stage)

def _conv(x, name: str, annotations: dict):
    conv = is_op("relax.nn.conv2d")(x, wildcard())
    annotations[name] = conv
    return conv | is_op("relax.add")(conv, wildcard())  # optional bias


def _relu_or_relu6(x):
    relu6 = is_op("relax.minimum")(is_op("relax.maximum")(x, wildcard()), wildcard())
    return is_op("relax.nn.relu")(x) | relu6 | is_op("relax.clip")(x, wildcard(), wildcard())


def _convfirst(residual: bool) -> FusionPattern:
    ann: dict = {}
    x = wildcard()
    y = _conv(_conv(x, "spatial", ann), "expand", ann)
    y = _conv(is_op("relax.multiply")(y, is_op("relax.sigmoid")(y)), "project", ann)
    name = "edgec.convfirst_block"
    if residual:
        y, name = is_op("relax.add")(x, y), name + "_residual"
    return FusionPattern(name, y, ann, _check_convfirst)


def _mbconv(residual: bool, expand: bool) -> FusionPattern:
    ann: dict = {}
    x = wildcard()
    y = _relu_or_relu6(_conv(x, "expand", ann)) if expand else x
    y = _conv(_relu_or_relu6(_conv(y, "depthwise", ann)), "project", ann)
    name = "edgec.mbconv_block" + ("" if expand else "_no_expand")
    if residual:
        y, name = is_op("relax.add")(x, y), name + "_residual"
    return FusionPattern(name, y, ann, _check_mbconv)


def block_patterns() -> list[FusionPattern]:
    """Most specific first: FuseOpsByPattern takes the first pattern that matches."""
    return [_convfirst(True), _convfirst(False),
            _mbconv(True, True), _mbconv(False, True), _mbconv(True, False), _mbconv(False, False)]


def _conv_facts(call: relax.Call) -> tuple[tuple[int, ...], int, tuple[int, ...], tuple[int, ...]]:
    """(kernel, groups, strides, padding) of a relax.nn.conv2d call with a static weight
    (OIHW, or HWIO once the lowering made the convs channels-last)."""
    weight_shape = tuple(int(d) for d in call.args[1].ty.shape.values)
    kernel = weight_shape[:2] if str(call.attrs.kernel_layout) == "HWIO" else weight_shape[2:]
    return (kernel, int(call.attrs.groups), tuple(int(s) for s in call.attrs.strides),
            tuple(int(p) for p in call.attrs.padding))


def _channels(call: relax.Call) -> int:
    """The data's channel count of a conv2d call (NCHW or NHWC)."""
    shape = static_shape(call.args[0])
    return shape[3] if str(call.attrs.data_layout) == "NHWC" else shape[1]


def _is_pointwise(call: relax.Call) -> bool:
    kernel, groups, strides, padding = _conv_facts(call)
    return kernel == (1, 1) and groups == 1 and strides == (1, 1) and not any(padding)


def _intermediates_stay_inside(ctx: PatternCheckContext) -> bool:
    """Only the block's output may be read outside it: a fused kernel keeps the rest per tile."""
    inside = set(ctx.matched_bindings.keys())
    output = ctx.value_to_bound_var.get(ctx.matched_expr)
    for var in inside:
        if output is not None and var.same_as(output):
            continue
        if any(user not in inside for user in ctx.var_usages.get(var, [])):
            return False
    return True


def _static(ctx: PatternCheckContext) -> bool:
    """Every conv's data and weight have static shapes (tiles are chosen at compile time)."""
    return all(static_shape(c.args[0]) is not None and static_shape(c.args[1]) is not None
               for c in ctx.annotated_expr.values())


def _check_convfirst(ctx: PatternCheckContext) -> bool:
    ann = ctx.annotated_expr
    return (_static(ctx) and _is_pointwise(ann["expand"]) and _is_pointwise(ann["project"])
            and _intermediates_stay_inside(ctx))


def _check_mbconv(ctx: PatternCheckContext) -> bool:
    ann = ctx.annotated_expr
    if not _static(ctx) or not _is_pointwise(ann["project"]):
        return False
    if "expand" in ann and not _is_pointwise(ann["expand"]):
        return False
    _, groups, _, _ = _conv_facts(ann["depthwise"])
    channels = _channels(ann["depthwise"])
    return groups == channels and groups > 1 and _intermediates_stay_inside(ctx)


@tvm.transform.module_pass(opt_level=0, name="edgec.FuseBlocks")
def FuseBlocks(mod: tvm.IRModule, _ctx) -> tvm.IRModule:  # noqa: N802 (a TVM pass, named like TVM's)
    """Group each ConvFirst/MBConv block into one Relax function and note which they are."""
    mod = relax.transform.FuseOpsByPattern(block_patterns(), bind_constants=False)(mod)
    blocks = {gv.name_hint: str(func.attrs["Composite"]).removeprefix("edgec.")
              for gv, func in mod.functions.items()
              if isinstance(func, relax.Function) and func.attrs is not None
              and str(func.attrs.get("Composite", "")).startswith("edgec.")}
    return mod.with_attr(BLOCKS_ATTR, blocks) if blocks else mod


# ---------------------------------------------------------------- tiled schedule (schedule stage)

@tvm.transform.module_pass(opt_level=0, name="edgec.ScheduleFusedBlocks")
def ScheduleFusedBlocks(mod: tvm.IRModule, _ctx) -> tvm.IRModule:  # noqa: N802
    """Tile every fused block PrimFunc (see module docstring); other PrimFuncs are left as TVM made them."""
    blocks = dict(mod.attrs[BLOCKS_ATTR]) if mod.attrs is not None and BLOCKS_ATTR in mod.attrs else {}
    for gv, func in list(mod.functions.items()):
        kind = blocks.get(gv.name_hint)
        if kind is None or not isinstance(func, tirx.PrimFunc):
            continue
        original = func
        try:
            func, tile = tile_fused_block(func, row_strips=str(kind).startswith("mbconv"))
        except (ValueError, ScheduleError) as exc:
            # Still one kernel and still correct, only not tiled: say why rather than fail the build.
            tile = f"untiled: {str(exc).strip().splitlines()[0]}"
        mod[gv] = with_flops_of(func, original, {KIND_ATTR: str(kind), TILE_ATTR: tile})
    return mod


def tile_fused_block(func: tirx.PrimFunc, tile: tuple[int, int] | None = None,
                     row_strips: bool = False) -> tuple[tirx.PrimFunc, str]:
    """The fused block scheduled tile by tile, and the tile as 'HxW' (`tile`, or chosen by
    choose_tile). Raises when the block's shape does not allow it (e.g. no 4-D output)."""
    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    outputs = sch.get_output_blocks(root)
    if len(outputs) != 1:
        raise ValueError(f"a fused block has one output, this PrimFunc has {len(outputs)}")
    out_name = sch.get(outputs[0]).name_hint
    _inline_cheap_stages(sch, root, out_name)

    out = sch.get_sblock(out_name)
    # The output is the residual add, or the project conv itself (a reduction) when it has no bias.
    loops = [lp for lp, iv in zip(sch.get_loops(out), sch.get(out).iter_vars)
             if iv.iter_type == tirx.IterVar.DataPar]
    if len(loops) != 4:
        raise ValueError(f"expected a 4-D output, got {len(loops)} spatial loops")
    extents = [int(sch.get(loop).extent) for loop in loops]
    if any(channels_last(sch.get(b)) for b in sch.get_child_blocks(root) if _is_reduction(sch, b)):
        rows = tile[0] if tile else choose_rows(extents[1], extents[2], _widest_channels(sch, root, channels_axis=3),
                                                _weight_bytes(func), halo=row_strips)
        return _tile_channels_last(sch, root, loops, rows), f"{rows}x{extents[2]}"
    tile_h, tile_w = tile or choose_tile(extents[2], extents[3], _widest_channels(sch, root), row_strips)
    n, c, h, w = loops
    h_outer, h_inner = sch.split(h, [None, tile_h])
    w_outer, w_inner = sch.split(w, [None, tile_w])
    sch.reorder(n, h_outer, w_outer, c, h_inner, w_inner)
    tile_loop = sch.fuse(n, h_outer, w_outer)
    for block in reversed(sch.get_child_blocks(root)[:-1]):
        sch.compute_at(block, tile_loop, preserve_unit_loops=True)
    for name in [sch.get(b).name_hint for b in sch.get_child_blocks(root)]:
        _vectorize_innermost(sch, sch.get_sblock(name), tile_loop)
    sch.parallel(tile_loop)
    return sch.mod["main"], f"{tile_h}x{tile_w}"


def _tile_channels_last(sch: s_tir.Schedule, root, loops, rows: int) -> tirx.PrimFunc:
    """NHWC blocks: tiles of `rows` whole output rows. Under the tile loop every conv is
    register-blocked like a hand-written kernel (see _register_block), and the elementwise
    stage after a conv is inlined into the store of its register tile."""
    n, h, w, c = loops
    h_outer, h_inner = sch.split(h, [None, rows])
    sch.reorder(n, h_outer, h_inner, w, c)
    tile_loop = sch.fuse(n, h_outer)
    for block in reversed(sch.get_child_blocks(root)[:-1]):
        sch.compute_at(block, tile_loop, preserve_unit_loops=True)
    sch.parallel(tile_loop)  # before the accumulators' cache_write: TVM refuses it after
    target = tvm.target.Target.current(allow_none=False)
    lanes = vector_lanes(target)
    names = [sch.get(b).name_hint for b in sch.get_child_blocks(root)]
    write_outs = set()  # the blocks that store a conv's register tile
    for name in names:
        block = sch.get_sblock(name)
        if _is_reduction(sch, block):
            write_outs.add(_register_block(sch, block, tile_loop, target))
            continue
        producers = {sch.get(p).name_hint for p in sch.get_producers(block)}
        if producers & write_outs:
            # The epilogue (bias, SiLU, residual add) applied as the register tile is stored:
            # the conv's own output buffer disappears.
            try:
                sch.reverse_compute_inline(block)
                continue
            except ScheduleError:
                pass  # e.g. it reads two convs' outputs: runs over the tile below
        vectorize_below(sch, block, tile_loop, lanes)
    return sch.mod["main"]


def _register_block(sch: s_tir.Schedule, block, tile_loop, target: tvm.target.Target):
    """A channels-last conv under the tile loop as

        out-channel blocks | rows, width blocks | reductions | width (unrolled) | channels (vector)

    with the width x channels tile accumulated in registers (a local buffer LLVM promotes),
    each input value one broadcast feeding one FMA per vector. Returns the name of the block
    that stores the tile (under the width-block loop)."""
    loops = sch.get_loops(block)
    first = next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(tile_loop))) + 1
    stmt = sch.get(block)
    n_reduce = sum(iv.iter_type == tirx.IterVar.CommReduce for iv in stmt.iter_vars)
    spatial, reduce = list(loops[first:len(loops) - n_reduce]), list(loops[len(loops) - n_reduce:])
    channels = int(sch.get(spatial[-1]).extent)
    per_group = grouped_output_channels(stmt)
    rows = largest_divisor_at_most(int(sch.get(spatial[-2]).extent), REGISTER_ROWS)
    lanes = vector_lanes(target)
    widest = lanes * vectors_per_row(target, rows)
    vector = vector_factor(math.gcd(channels, per_group) if per_group else channels, widest)
    c_outer, c_inner = sch.split(spatial[-1], [None, vector])
    w_outer, w_inner = sch.split(spatial[-2], [None, rows])
    sch.reorder(c_outer, *spatial[:-2], w_outer, *reduce, w_inner, c_inner)
    acc = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(acc, w_outer, preserve_unit_loops=True)
    vectorize_below(sch, acc, w_outer, lanes)
    sch.vectorize(c_inner)
    sch.unroll(w_inner)
    for r in reduce[:-1]:  # kernel windows (3x3): unrolled, so their offsets are constants
        if int(sch.get(r).extent) <= 7:
            sch.unroll(r)
    sch.decompose_reduction(block, reduce[0])
    return sch.get(acc).name_hint


def choose_rows(height: int, width: int, channels: int, weight_bytes: int = 0, halo: bool = False) -> int:
    """Output rows per channels-last tile: as many as keep the widest per-tile intermediate
    within ROW_TILE_BYTES (L1-sized), at least one; blocks whose weights are large next to
    a row (the late, small planes) get up to a quarter of their weight bytes instead, since
    every tile streams all the weights once. Measured on the ConvFirst net's 7x7 blocks
    (256 -> 1024 -> 256 channels, 2 MiB of weights): whole-image tiles 1.3x faster than
    1-row ones, while 32 KiB tiles stayed fastest for the 28x28 and 56x56 blocks.
    With a `halo` (MBConv: the depthwise conv reads k-1 extra rows of the EXPANDED tensor,
    recomputed by every tile), rows fill TILE_BUDGET_BYTES for a producer and consumer
    buffer, as the NCHW row strips do."""
    budget = TILE_BUDGET_BYTES // 2 if halo else max(ROW_TILE_BYTES, weight_bytes // 4)
    fitting = [d for d in _divisors(height) if d * width * channels * 4 <= budget]
    return max(fitting) if fitting else 1


def choose_tile(height: int, width: int, channels: int, row_strips: bool = False) -> tuple[int, int]:
    """(tile height, tile width), both dividing the output: row strips as tall as the budget
    allows when `row_strips` (MBConv), else a small register tile (ConvFirst)."""
    if row_strips:
        tile_w = max(d for d in _divisors(width) if d <= MAX_ROW_STRIP_W)
        return choose_rows(height, tile_w, channels, halo=True), tile_w
    if width % 8 == 0:
        tile_w, area = 8, REGISTER_TILE
    else:
        tile_w, area = max(d for d in _divisors(width) if d <= 2 * MAX_VECTOR), RAGGED_TILE
    return max(d for d in _divisors(height) if d * tile_w <= max(area, tile_w)), tile_w


def _vector_lanes(extent: int, limit: int = MAX_VECTOR) -> int | None:
    """The widest vector (a multiple of 4 lanes, at most `limit`) that divides `extent`."""
    lanes = [d for d in range(4, limit + 1, 4) if extent % d == 0]
    return max(lanes) if lanes else None


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _is_reduction(sch: s_tir.Schedule, block) -> bool:
    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(block).iter_vars)


def _is_copy(sch: s_tir.Schedule, block) -> bool:
    body = sch.get(block).body
    return isinstance(body, tirx.BufferStore) and isinstance(body.value, tvm.ir.TensorLoad)


def _inline_cheap_stages(sch: s_tir.Schedule, root, out_name: str) -> None:
    """Inline plain copies (unpadded 'pad' stages) everywhere, and elementwise stages into
    elementwise consumers (bias add and sigmoid into the SiLU multiply). Stages feeding a
    reduction stay: inlined there they would be recomputed for every output channel."""
    changed = True
    while changed:
        changed = False
        for block in sch.get_child_blocks(root):
            if sch.get(block).name_hint == out_name or _is_reduction(sch, block):
                continue
            consumers = sch.get_consumers(block)
            if _is_copy(sch, block) or not any(_is_reduction(sch, c) for c in consumers):
                try:
                    sch.compute_inline(block)
                except ScheduleError:
                    continue  # e.g. a padding stage with a halo: it stays a per-tile buffer
                changed = True
                break


def _weight_bytes(func: tirx.PrimFunc) -> int:
    """Bytes of the block's parameters besides its data input and its output: the conv
    weights and biases."""
    params = [p for p in func.params if getattr(p, "shape", None) is not None][1:-1]
    return sum(math.prod(int(d) for d in p.shape) * p.dtype.bits // 8 for p in params)


def _widest_channels(sch: s_tir.Schedule, root, channels_axis: int = 1) -> int:
    """The most channels any stage writes (the expanded width of the block)."""
    widest = 1
    for block in sch.get_child_blocks(root):
        for region in sch.get(block).writes:
            shape = region.source.shape
            if len(shape) == 4:
                widest = max(widest, int(shape[channels_axis]))
    return widest


def _vectorize_innermost(sch: s_tir.Schedule, block, tile_loop) -> None:
    """Spatial loops innermost (reduction loops moved outside them), the last one vectorized.

    Under the tile loop a block's loops are its spatial loops then its reduction loops (conv
    iteration order, kept by compute_at and by the output's split/reorder)."""
    loops = sch.get_loops(block)
    tile = next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(tile_loop)))
    own = loops[tile + 1:]
    reductions = sum(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(block).iter_vars)
    spatial, reduce = own[:len(own) - reductions], own[len(own) - reductions:]
    if reduce and len(spatial) >= 2:
        sch.reorder(*spatial[:-2], *reduce, *spatial[-2:])
    innermost = spatial[-1]
    extent = int(sch.get(innermost).extent)
    if extent > MAX_VECTOR:
        lanes = _vector_lanes(extent)
        if lanes is None:
            return  # e.g. a 58-wide padded row: left to LLVM rather than spilled
        innermost = sch.split(innermost, [None, lanes])[1]
    sch.vectorize(innermost)


def block_fusion_passes() -> dict[str, list[tvm.transform.Pass]]:
    """lower_tvm's extra passes for a target with block_fusion: true."""
    return {"rewrite": [FuseBlocks], "schedule": [ScheduleFusedBlocks]}


def fused_blocks(mod: tvm.IRModule) -> dict[str, str]:
    """{PrimFunc name: block kind} for the fused, tiled blocks in a lowered module."""
    return {gv.name_hint: str(f.attrs[KIND_ATTR]) for gv, f in mod.functions.items()
            if isinstance(f, tirx.PrimFunc) and f.attrs is not None and KIND_ATTR in f.attrs}


def prim_func_count(mod: tvm.IRModule) -> int:
    return sum(isinstance(f, tirx.PrimFunc) for f in mod.functions.values())


def describe(mod: tvm.IRModule) -> dict:
    """Facts for the compile report: how many block calls run fused, and of which kinds
    (identical blocks share one PrimFunc, so calls are counted, not functions)."""

    blocks = fused_blocks(mod)
    kinds: dict[str, int] = {}
    for symbol, _ in kernel_calls(mod):
        if symbol in blocks:
            kinds[blocks[symbol]] = kinds.get(blocks[symbol], 0) + 1
    untiled = sorted({str(mod[name].attrs[TILE_ATTR]) for name in blocks
                      if str(mod[name].attrs[TILE_ATTR]).startswith("untiled")})
    return {"fused_blocks": sum(kinds.values()), "kinds": kinds, "prim_funcs": len(blocks),
            **({"untiled": untiled} if untiled else {}),
            "tflite": "no block-fusion kernels in TFLite: the .tflite artifact runs these blocks op by op"}
