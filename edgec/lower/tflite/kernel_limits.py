"""The quantization parameters XNNPACK's int8 kernels accept, checked before a file is written.

XNNPACK refuses an operator whose requantization falls outside the fixed-point range its
kernels implement, and the TFLite delegate then fails to prepare the whole model: the file
does not load. The limits below are the ones XNNPACK's operator constructors test
(src/operators/*.c, xnn_create_*_qs8 / qc8):
- every scale finite, positive and normal;
- convolution / fully connected / transposed convolution: input scale x filter scale /
  output scale in [2^-32, 256), for every output channel of a per-channel filter;
- add / subtract: each input scale / output scale in [2^-10, 2^8);
- multiply: input1 scale x input2 scale / output scale in [2^-16, 2^8);
- requantizing QUANTIZE (int8 -> int8): input scale / output scale in [2^-8, 2^7].
Where the limit is checked matters. The TFLite delegate tests add/subtract/multiply/requantize
ranges while partitioning, and leaves such an op to LiteRT's builtin kernels (the file loads,
that op runs slower: measured, an ADD at ratio 5e-5 stays on the CPU kernels). Convolution and
fully connected ratios, and non-positive scales, are only seen when XNNPACK creates its
operators, and then the whole model fails to prepare (or, as measured on timm mobilevit_xxs,
aborts). So the latter are errors naming the TFLite op, its output tensor (the ONNX name) and
the ratio, and the compile stops with a reason instead of writing a file no runtime loads; the
former are listed in the lowering report as ops XNNPACK will not take.
"""

from __future__ import annotations

import math

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgec.errors import EdgecError
from edgec.lower.tflite.builder import TFLiteGraph

INT8 = schema.TensorType.INT8

_CONV_LIKE = {"CONV_2D": (0, 1), "DEPTHWISE_CONV_2D": (0, 1), "FULLY_CONNECTED": (0, 1),
              "TRANSPOSE_CONV": (2, 1)}  # op -> (data input, filter input)
_CONV_RANGE = (2.0 ** -32, 256.0, False)  # (low, high, high included)
_ADD_RANGE = (2.0 ** -10, 2.0 ** 8, False)
_MUL_RANGE = (2.0 ** -16, 2.0 ** 8, False)
_REQUANTIZE_RANGE = (2.0 ** -8, 2.0 ** 7, True)


class KernelLimitError(EdgecError):
    """Quantization parameters XNNPACK's int8 kernels cannot run."""


def _scales(graph: TFLiteGraph, tensor: int) -> np.ndarray | None:
    """The int8 scales of a tensor (one per channel for per-axis ones), None when not int8."""
    if tensor < 0:
        return None
    t = graph.tensors[tensor]
    q = t.quantization
    if t.type != INT8 or q is None or q.scale is None or len(q.scale) == 0:
        return None
    return np.asarray(q.scale, np.float64)


def _outside(ratio: np.ndarray, limits: tuple[float, float, bool]) -> np.ndarray:
    lo, hi, hi_included = limits
    above = ratio > hi if hi_included else ratio >= hi
    return (ratio < lo) | above


def _describe(limits: tuple[float, float, bool]) -> str:
    lo, hi, hi_included = limits
    return f"[2^{math.log2(lo):g}, 2^{math.log2(hi):g}{']' if hi_included else ')'}"


def kernel_limit_violations(graph: TFLiteGraph) -> list[str]:
    """The int8 parameters of `graph` that make XNNPACK fail to prepare the model, one line each."""
    return _violations(graph)[0]


def delegation_limit_misses(graph: TFLiteGraph) -> list[str]:
    """Ops whose int8 ratios XNNPACK's delegate declines (they run on LiteRT's builtin kernels)."""
    return _violations(graph)[1]


def _violations(graph: TFLiteGraph) -> tuple[list[str], list[str]]:
    problems, declined = [], []
    for index, t in enumerate(graph.tensors):
        s = _scales(graph, index)
        if s is not None and not np.all(np.isfinite(s) & (s > 0) & (s >= np.finfo(np.float32).tiny)):
            problems.append(f"tensor '{t.name}': int8 scale {float(s.min()):.3g} is not a positive normal float")
    for op in graph.operators:
        name = graph.op_name(op)
        out = op.outputs[0] if len(op.outputs) else -1
        out_scale = _scales(graph, out)
        if out_scale is None or out_scale.size != 1 or not out_scale[0] > 0:
            continue  # a non-positive scale is reported above
        label = f"{name} '{graph.name(out)}'"
        ins = [_scales(graph, i) for i in op.inputs]
        if name in _CONV_LIKE:
            x, w = (ins[i] if i < len(ins) else None for i in _CONV_LIKE[name])
            if x is None or w is None:
                continue
            ratio = x[0] * w / out_scale[0]
            bad = _outside(ratio, _CONV_RANGE)
            if bad.any():
                worst = ratio[bad][np.argmax(np.abs(np.log2(ratio[bad])))]
                problems.append(
                    f"{label}: input scale x filter scale / output scale is {worst:.3g} on {int(bad.sum())} of "
                    f"{ratio.size} output channel(s); XNNPACK needs {_describe(_CONV_RANGE)}")
        elif name in ("ADD", "SUB"):
            for k, s in enumerate(ins[:2]):
                if s is None:
                    continue
                ratio = s[0] / out_scale[0]
                if _outside(np.asarray(ratio), _ADD_RANGE):
                    declined.append(f"{label}: input {k} scale / output scale is {ratio:.3g}; XNNPACK needs "
                                    f"{_describe(_ADD_RANGE)}")
        elif name == "MUL":
            if len(ins) >= 2 and ins[0] is not None and ins[1] is not None:
                ratio = ins[0][0] * ins[1][0] / out_scale[0]
                if _outside(np.asarray(ratio), _MUL_RANGE):
                    declined.append(f"{label}: input scales' product / output scale is {ratio:.3g}; XNNPACK "
                                    f"needs {_describe(_MUL_RANGE)}")
        elif name == "QUANTIZE" and ins and ins[0] is not None:
            ratio = ins[0][0] / out_scale[0]
            if _outside(np.asarray(ratio), _REQUANTIZE_RANGE):
                declined.append(f"{label}: requantization input scale / output scale is {ratio:.3g}; XNNPACK "
                                f"needs {_describe(_REQUANTIZE_RANGE)}")
    return problems, declined


def check_kernel_limits(graph: TFLiteGraph, target: str) -> list[str]:
    """Raise KernelLimitError listing each op whose int8 parameters make XNNPACK fail to prepare
    the file; returns the ops its delegate will decline (they still run, on builtin kernels)."""
    problems, declined = _violations(graph)
    if problems:
        shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])
        raise KernelLimitError(
            f"target '{target}': {len(problems)} int8 layer(s) have quantization parameters XNNPACK's kernels "
            "refuse (the file would not load), no artifact written:\n  " + "\n  ".join(shown)
            + "\n(a layer whose calibrated range is degenerate or extreme: calibrate with real data, or "
            "keep that layer in float)")
    return declined
