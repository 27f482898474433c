"""int8 convolutions on the CPU's integer dot-product instruction: x86 AVX-512 VNNI `vpdpbusd`,
ARM FEAT_DotProd `sdot`.

`vpdpbusd` multiplies 4 UNSIGNED bytes by 4 signed bytes and adds the 4 products to an int32
lane, 16 lanes at a time: C[16] += A[4] (u8) . B[16, 4] (i8). Its operands must be laid out
for it, so on a target with the instruction qdq.py lowers a dense int8 conv as

    x_q (int8, NHWC) --pack--> x_u8 [N, H+pads, W+pads, C rounded up to 4] (uint8: x_q + 128;
        spatial padding is z_x + 128; channels padded to a multiple of 4 meet zero weights)
    W_q (int8, OIHW) --packed at compile time--> [O/16, C/4, KH, KW, 16, 4]
    acc[N, O/16, H', W', 16] = sum x_u8 . W (int32)  --unpack + requantize--> y_q (int8, NHWC)

Channels-last, a pixel's 4 channels per instruction word are already adjacent, and each
16-lane accumulator stores 16 adjacent output channels; the int8 graph stays NHWC from conv
to conv (transposes.py).

The +128 makes the activations unsigned without changing the product's information:
sum (x + 128) w = sum x w + 128 sum w, so the correction -(z_x + 128) sum_k W[o] is one int32
constant per output channel, folded into the bias exactly as qdq.py folds -z_x sum_k W[o].
The accumulator is the same integer as the int8 x int8 conv's, so the requantized output is
bit-identical to the portable lowering's. Padded output channels (O up to a multiple of 16)
have zero weights and are dropped by the unpack.

ARM's `sdot` (C[4] += A[4] . B[4, 4], int8 x int8, on aarch64 targets with +dotprod) takes
the same packing with 4 lanes and no offset (DotProduct SDOT). Verified under qemu-arm64
(correctness only: no ARM latency was measured).

The conv block carries the DOT_BLOCK annotation; schedule_int8_dot (the default CPU schedule
for it, from schedules.py) register-blocks it and marks the 16x4 inner product, and
emit_dot_products replaces each marked inner product by the instruction. TVM 0.27's own
route, sch.tensorize with its `dot_16x4_vnni` intrinsic, is not taken: its impl calls
vpdpbusd.512 on <16 x i32> operands where the wheel's LLVM declares <64 x i8> (LLVM rejects
the module), its C buffer is global scope so it does not match a register-tile accumulator,
and with tvm-ffi 0.1.15 tensorize itself segfaults (a deep copy through ffi's JSON graph;
0.1.14.post0, which pyproject pins, runs it).

`edgec tune` leaves these kernels out (tuning_seed.instruction_kernels): MetaSchedule's
generic CPU rules do not emit the instruction, so its candidates would only lose to it.

Measured (MobileNet v2 224, 1 thread, `edgec analyze`): NCHW in and out, with transposes
around every depthwise conv, the module ran 9.3 ms; channels-last end to end 5.0 ms, with
bit-identical outputs. Ratios against fp32: benchmarks/bench_tvm_int8_vnni.py, results in
benchmarks/results/tvm_int8_vnni.md.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tvm
import tvm_ffi
from tvm import s_tir, te, tirx

from edgec.lower.tvm.qdq_kernels import requantize

_log = logging.getLogger(__name__)
DEPTH = 4  # bytes per lane per instruction (both instructions)
DOT_BLOCK = "edgec.int8_dot"  # annotation of the conv block whose inner 16x4 product is the instruction
_DOT_PRODUCT = "edgec.int8_dot_product"  # the blockized 16x4 product, replaced by emit_dot_products
CONV_NAME = "int8_dot_conv2d"  # PrimFunc name hint of the conv + requantize (qdq.integer_summary counts them)
UNSIGNED_OFFSET = 128  # int8 + 128 = uint8


@dataclasses.dataclass(frozen=True)
class DotProduct:
    """One integer dot-product instruction: C[lanes] (int32) += A[4] . B[lanes, 4]."""

    lanes: int  # int32 accumulators per instruction
    activation_dtype: str  # what A must be: vpdpbusd takes uint8 (x + offset), sdot int8
    offset: int  # added to the int8 activations to make them activation_dtype
    intrinsic: str  # LLVM intrinsic: (int32 x lanes acc, int8 x 4*lanes A, int8 x 4*lanes B)
    # Register tile: at most this many accumulator registers (the rest hold weights and
    # broadcast activations).
    accumulators: int


VNNI = DotProduct(16, "uint8", UNSIGNED_OFFSET, "llvm.x86.avx512.vpdpbusd.512", accumulators=28)
# ARM FEAT_DotProd (+dotprod): sdot is int8 x int8, so no offset.
SDOT = DotProduct(4, "int8", 0, "llvm.aarch64.neon.sdot.v4i32.v16i8", accumulators=24)


def dot_product_of(target: tvm.target.Target | None) -> DotProduct | None:
    """VNNI for llvm x86 targets with AVX-512 VNNI (and BW for 512-bit bytes), SDOT for
    aarch64 targets with +dotprod, else None."""
    if target is None or target.kind.name != "llvm":
        return None
    from tvm.target import codegen

    triple = str(target.attrs.get("mtriple", ""))
    if triple.startswith("x86_64") and codegen.target_has_features(["avx512vnni", "avx512bw"], target):
        return VNNI
    if triple.startswith("aarch64") and codegen.target_has_features(["dotprod"], target):
        return SDOT
    return None


def has_int8_dot(target: tvm.target.Target | None) -> bool:
    return dot_product_of(target) is not None


def pack_weight(w: np.ndarray, lanes: int) -> np.ndarray:
    """OIHW int8 -> [O/lanes, C/4, KH, KW, lanes, 4], zero-padded to whole blocks."""
    o, c, kh, kw = w.shape
    ob, cb = -(-o // lanes), -(-c // DEPTH)
    padded = np.zeros((ob * lanes, cb * DEPTH, kh, kw), np.int8)
    padded[:o, :c] = w
    return np.ascontiguousarray(padded.reshape(ob, lanes, cb, DEPTH, kh, kw).transpose(0, 2, 4, 5, 1, 3))


def pack_activation(x: te.Tensor, *, padding, zero_point: int, offset: int, dtype: str) -> te.Tensor:
    """int8 NHWC -> dtype [N, H + top + bottom, W + left + right, C rounded up to 4] (x + offset;
    pads z_x + offset). Channels-last, each pixel's 4 channels per instruction word are
    already adjacent: only the offset, the padding and the channel tail remain to be done."""
    n, h, w, c = (int(d) for d in x.shape)
    top, left, bottom, right = padding
    pad_value = tirx.const(zero_point + offset, "int32")

    def compute(b, y, xx, channel):
        inside = tirx.all(y >= top, y < top + h, xx >= left, xx < left + w, channel < c)
        value = x[b, y - top, xx - left, tirx.min(channel, c - 1)].astype("int32") + offset
        # if_then_else, not a select: the load must not run for padded positions (it would read
        # outside x), and TVM's simplifier drops clamps under a select's condition.
        return tirx.if_then_else(inside, value, pad_value).astype(dtype)

    shape = (n, h + top + bottom, w + left + right, -(-c // DEPTH) * DEPTH)
    return te.compute(shape, compute, name="pack_u8")


def conv2d_requantize(data: te.Tensor, weight: te.Tensor, bias: te.Tensor, multiplier: te.Tensor, *,
                      channels: int, strides, dilation, zero_point: int, qmin: int, qmax: int,
                      out_dtype: str) -> te.Tensor:
    """The packed u8 x i8 -> i32 conv (DOT_BLOCK) on pack_activation's NHWC data, unpacked to
    NHWC (each 16-lane accumulator stores 16 adjacent channels) and requantized."""
    n, hp, wp, _ = (int(d) for d in data.shape)
    ob, cb, kh, kw, lanes, _ = (int(d) for d in weight.shape)
    sh, sw = (int(s) for s in strides)
    dh, dw = (int(d) for d in dilation)
    ho, wo = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    rc, ry, rx, ri = (te.reduce_axis((0, e), name) for e, name in
                      ((cb, "rc"), (kh, "ry"), (kw, "rx"), (DEPTH, "ri")))
    acc = te.compute(
        (n, ob, ho, wo, lanes),
        lambda b, oo, y, x, oi: te.sum(
            data[b, y * sh + ry * dh, x * sw + rx * dw, rc * DEPTH + ri].astype("int32")
            * weight[oo, rc, ry, rx, oi, ri].astype("int32"), axis=[rc, ry, rx, ri]),
        name="conv_dot", attrs={DOT_BLOCK: 1})
    unpacked = te.compute((n, ho, wo, channels), lambda b, y, x, o: acc[b, o // lanes, y, x, o % lanes],
                          name="unpack")
    return requantize(unpacked, bias, multiplier, axis=3, zero_point=zero_point, qmin=qmin, qmax=qmax,
                      out_dtype=out_dtype)


def find_dot_block(sch: s_tir.Schedule):
    """The DOT_BLOCK of a (possibly fused) PrimFunc, or None."""
    found = []

    def visit(block):
        if DOT_BLOCK in block.annotations:
            found.append(block.name_hint)
        return block

    tvm_ffi.structural_map(sch.mod["main"], [(s_tir.SBlock, visit)])
    return sch.get_sblock(found[0]) if len(found) == 1 else None


def schedule_int8_dot(sch: s_tir.Schedule, block, dot: DotProduct) -> None:
    """Register-blocked loop nest around the 16x4 dot product; the epilogue runs per tile.

        n, oo_outer, y, x_outer | rc, ry, rx | oo_inner, x_inner (unrolled) | oi (16), ri (4)

    The oo_inner x x_inner tile of 16-lane accumulators stays in registers (a local buffer
    LLVM promotes), each broadcast activation word feeds oo_inner instructions and each
    weight vector x_inner ones.
    """
    consumers = sch.get_consumers(block)
    n, oo, y, x, oi, rc, ry, rx, ri = sch.get_loops(block)
    ob, width = _extent(sch, oo), _extent(sch, x)
    x_inner = max(d for d in range(1, min(width, 16) + 1) if width % d == 0)
    oo_inner = max(d for d in (1, 2, 4) if ob % d == 0 and d * x_inner <= dot.accumulators)
    x_outer, x_in = sch.split(x, [None, x_inner])
    oo_outer, oo_in = sch.split(oo, [None, oo_inner])
    sch.reorder(n, oo_outer, y, x_outer, rc, ry, rx, oo_in, x_in, oi, ri)
    local = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(local, x_outer, preserve_unit_loops=True)
    # Everything after the conv (unpack, requantize, a fused float island) as one epilogue per tile.
    _inline_into_last(sch, consumers)
    tail = _last_consumer(sch, local)
    if tail is not None:
        # A fused float island's other operand (a residual's dequantize) is computed in the
        # epilogue too: reverse_compute_at needs every producer of the tail under the tile.
        for producer in sch.get_producers(tail):
            if not sch.get(producer).same_as(sch.get(local)):
                _try(sch.compute_inline, producer)
        if _try(sch.reverse_compute_at, tail, x_outer, True):
            _vectorize_channels(sch, tail, dot.lanes)
        else:
            _log.debug("int8 dot-product conv: epilogue %s left as a separate pass", sch.get(tail).name_hint)
    sch.unroll(oo_in)
    sch.unroll(x_in)
    sch.parallel(oo_outer)
    init = sch.decompose_reduction(block, rc)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.vectorize(sch.get_loops(local)[-1])
    sch.annotate(sch.blockize(oi), _DOT_PRODUCT, 1)


def emit_dot_products(func: tirx.PrimFunc, dot: DotProduct) -> tirx.PrimFunc:
    """Each marked lanes x 4 product block becomes one instruction (C += A . B on its regions)."""

    def replace(block):
        if _DOT_PRODUCT not in block.annotations:
            return block
        c = block.writes[0]
        # Besides the accumulator, the product reads data then weights (the compute's order).
        a, b = [r for r in block.reads if not r.source.same_as(c.source)]
        lanes = dot.lanes
        c_begin = [r.min for r in c.region]
        word = tirx.reinterpret("int32", a.source.vload([r.min for r in a.region], f"{dot.activation_dtype}x{DEPTH}"))
        value = tirx.call_llvm_pure_intrin(
            f"int32x{lanes}", dot.intrinsic, c.source.vload(c_begin, f"int32x{lanes}"),
            tirx.reinterpret(f"int8x{lanes * DEPTH}", tirx.Broadcast(word, lanes)),
            b.source.vload([r.min for r in b.region], f"int8x{lanes * DEPTH}"))
        annotations = {k: v for k, v in block.annotations.items() if k != _DOT_PRODUCT}
        return s_tir.SBlock(block.iter_vars, block.reads, block.writes, block.name_hint,
                            c.source.vstore(c_begin, value), block.init, block.alloc_buffers,
                            block.match_buffers, annotations)

    return tvm_ffi.structural_map(func, [(s_tir.SBlock, replace)])


def _vectorize_channels(sch: s_tir.Schedule, block, lanes: int) -> None:
    """The epilogue's innermost loop runs over adjacent output channels (NHWC): one vector of
    `lanes` per accumulator register."""
    inner = sch.get_loops(block)[-1]
    if _extent(sch, inner) % lanes == 0:
        sch.vectorize(sch.split(inner, [None, lanes])[1])


def _inline_into_last(sch: s_tir.Schedule, blocks) -> None:
    pending = list(blocks)
    while pending:
        block = pending.pop(0)
        later = sch.get_consumers(block)
        if later:
            pending.extend(later)
            sch.compute_inline(block)


def _last_consumer(sch: s_tir.Schedule, block):
    last, consumers = None, sch.get_consumers(block)
    while consumers:
        last = consumers[0]
        consumers = sch.get_consumers(last)
    return last


def _try(fn, *args) -> bool:
    try:
        fn(*args)
        return True
    except s_tir.schedule.ScheduleError:
        return False


def _extent(sch: s_tir.Schedule, loop) -> int:
    return int(sch.get(loop).extent)
