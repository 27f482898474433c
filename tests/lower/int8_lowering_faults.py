"""Faults a wrong int8 TFLite lowering could make, injected into a lowered graph (before it is
serialized): the faithfulness test and the fault-injection benchmark
(benchmarks/bench_int8_fault_injection.py) both check that verification catches each one.

Each fault takes the lowering's flatbuffer graph and changes one layer; `faulted_layer` says
which layer (its output tensor) the check should name. The layer is a CONV_2D that reads
another layer's output (so it is checked with a fed input) with a filter larger than 1x1 (so a
transposed filter is a different filter): the second CONV_2D with the largest kernel, or the
first when every later one is 1x1 (MobileNets); for the bias fault, the first FULLY_CONNECTED.
"""

from __future__ import annotations

import numpy as np


def _ops(graph, name):
    return [op for op in graph.operators if graph.op_name(op) == name]


def _faulted_conv(graph):
    convs = _ops(graph, "CONV_2D")

    def area(op):
        shape = graph.tensors[op.inputs[1]].shape  # OHWI
        return int(shape[1]) * int(shape[2])

    later = max(convs[1:], key=area, default=None)  # max keeps the first of equals
    return later if later is not None and area(later) > 1 else convs[0]


def _first_fc(graph):
    return _ops(graph, "FULLY_CONNECTED")[0]


def wrong_output_scale(graph):
    graph.tensors[_faulted_conv(graph).outputs[0]].quantization.scale[0] *= 1.25


def wrong_zero_point(graph):
    graph.tensors[_faulted_conv(graph).outputs[0]].quantization.zeroPoint[0] += 5


def transposed_filter(graph):
    t = graph.tensors[_faulted_conv(graph).inputs[1]]
    buf = graph.buffers[t.buffer]
    w = np.asarray(buf.data).view(np.int8).reshape(t.shape)  # OHWI
    buf.data = np.ascontiguousarray(w.transpose(0, 2, 1, 3)).reshape(-1).view(np.uint8)


def swapped_channel_scales(graph):
    q = graph.tensors[_faulted_conv(graph).inputs[1]].quantization
    q.scale[0], q.scale[1] = q.scale[1], q.scale[0]


def doubled_bias(graph):
    t = graph.tensors[_first_fc(graph).inputs[2]]
    buf = graph.buffers[t.buffer]
    buf.data = (np.asarray(buf.data).view(np.int32) * 2).view(np.uint8)


FAULTS = {f.__name__: f for f in (wrong_output_scale, wrong_zero_point, transposed_filter,
                                   swapped_channel_scales, doubled_bias)}


def faulted_tensor(graph, fault: str) -> str:
    """The TFLite tensor name of the output of the layer `fault` changes."""
    op = _first_fc(graph) if fault == "doubled_bias" else _faulted_conv(graph)
    return graph.tensors[op.outputs[0]].name
