"""Small hand-built ONNX graphs for the TFLite lowering tests, and the shared comparison.

Each case is one op (or a short chain) with random weights; `nchw_prelude=True` puts a 1x1
Conv in front so the op under test sees an NHWC-held input (the layout most real graphs
give it) instead of the graph input's NCHW.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgec.ir import OPSET, from_proto, sample_inputs
from edgec.lower.tflite import lower_tflite
from edgec.passes.shape_inference import infer_shapes_in_place
from edgec.runtimes.litert import LiteRTRuntime
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.targets import get_target

RNG_SEED = 0


@dataclasses.dataclass
class Case:
    """A graph of `nodes` reading float inputs `inputs` (name -> shape) and `consts`."""

    nodes: list[onnx.NodeProto]
    inputs: dict[str, Sequence[int]]
    outputs: Sequence[str] = ("y",)
    consts: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    nchw_prelude: bool = False
    # Exact counts of the TFLite ops that show the intended lowering (0: must not appear).
    ops: dict[str, int] = dataclasses.field(default_factory=dict)
    # Ops XNNPACK is allowed to leave on the CPU kernels for this case.
    cpu_ops: tuple[str, ...] = ()

    def model(self):
        return build_model(self)


def rand(*shape: int, seed: int = 1, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def node(op: str, inputs: Sequence[str], outputs: Sequence[str] = ("y",), **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op, list(inputs), list(outputs), **attrs)


def build_model(case: Case, opset: int = OPSET):
    """The case as an onnx_ir model with shapes inferred (the lowering's input contract)."""
    nodes = list(case.nodes)
    consts = dict(case.consts)
    graph_inputs = dict(case.inputs)
    if case.nchw_prelude:
        # x_nchw -> 1x1 Conv -> x: the op under test reads a value held NHWC.
        renamed = {}
        for name, shape in case.inputs.items():
            channels = shape[1]
            w = np.eye(channels, dtype=np.float32)[:, :, None, None] + rand(channels, channels, 1, 1, scale=0.1)
            consts[f"{name}_prelude_w"] = w
            nodes.insert(0, node("Conv", [f"{name}_nchw", f"{name}_prelude_w"], [name]))
            renamed[f"{name}_nchw"] = shape
        graph_inputs = renamed
    graph = helper.make_graph(
        nodes,
        "case",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in graph_inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in case.outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto = onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    model = from_proto(proto)
    infer_shapes_in_place(model)  # edgec's inference: also the ops onnx infers nothing for
    return model


@dataclasses.dataclass
class Comparison:
    report: dict
    max_abs_error: float
    max_abs_reference: float
    delegation: dict
    runtime: LiteRTRuntime

    @property
    def rel_error(self) -> float:
        return self.max_abs_error / max(self.max_abs_reference, 1e-6)


def lower_and_compare(model, path: Path, xnnpack: bool = True, seed: int = RNG_SEED) -> Comparison:
    """Lower `model` to `path`, run it in LiteRT and in onnxruntime on the same inputs."""
    report = lower_tflite(model, get_target("x86_64-fp32"), path)
    inputs = sample_inputs(model, seed=seed)
    reference = OnnxRuntime.from_ir(model, optimize=False).run(inputs)
    runtime = LiteRTRuntime(path, xnnpack=xnnpack)
    outputs = runtime.run(inputs)
    assert [s.name for s in runtime.outputs] == [v.name for v in model.graph.outputs]
    err = max(float(np.max(np.abs(o - r))) if o.size else 0.0 for o, r in zip(outputs, reference))
    ref_max = max(float(np.max(np.abs(r))) if r.size else 0.0 for r in reference)
    for o, r in zip(outputs, reference):
        assert o.shape == r.shape, f"shape {o.shape} != reference {r.shape}"
    return Comparison(report, err, ref_max, runtime.delegation(), runtime)


def _conv_cases() -> dict[str, Case]:
    x = {"x": (1, 4, 9, 10)}
    w, b = rand(6, 4, 3, 3), rand(6, seed=2)
    cases = {
        "conv_same": Case([node("Conv", ["x", "w", "b"], pads=[1, 1, 1, 1])], x, consts={"w": w, "b": b},
                          ops={"CONV_2D": 1, "PAD": 0}),
        "conv_stride2_pad1": Case([node("Conv", ["x", "w", "b"], pads=[1, 1, 1, 1], strides=[2, 2])], x,
                                  consts={"w": w, "b": b}, ops={"PAD": 1, "CONV_2D": 1}),
        "conv_auto_same_upper_stride2": Case([node("Conv", ["x", "w"], auto_pad="SAME_UPPER", strides=[2, 2])], x,
                                             consts={"w": w}, ops={"PAD": 0}),
        "conv_asymmetric_pads": Case([node("Conv", ["x", "w", "b"], pads=[0, 1, 2, 1])], x, consts={"w": w, "b": b},
                                     ops={"PAD": 1}),
        "conv_valid_no_bias": Case([node("Conv", ["x", "w"])], x, consts={"w": w}),
        "conv_dilated": Case([node("Conv", ["x", "w", "b"], pads=[2, 2, 2, 2], dilations=[2, 2])], x,
                             consts={"w": w, "b": b}),
        "conv_1x1_stride2": Case([node("Conv", ["x", "w1"], strides=[2, 2])], x, consts={"w1": rand(8, 4, 1, 1)}),
        "depthwise": Case([node("Conv", ["x", "dw", "b4"], group=4, pads=[1, 1, 1, 1])], x,
                          consts={"dw": rand(4, 1, 3, 3), "b4": rand(4)}, ops={"DEPTHWISE_CONV_2D": 1}),
        "depthwise_stride2_multiplier2": Case(
            [node("Conv", ["x", "dw"], group=4, pads=[1, 1, 1, 1], strides=[2, 2])], x, consts={"dw": rand(8, 1, 3, 3)},
            ops={"DEPTHWISE_CONV_2D": 1}),
        "depthwise_dilated_5x5": Case([node("Conv", ["x", "dw"], group=4, pads=[4, 4, 4, 4], dilations=[2, 2])], x,
                                      consts={"dw": rand(4, 1, 5, 5)}),
        "grouped_conv": Case([node("Conv", ["x", "gw", "gb"], group=2, pads=[1, 1, 1, 1])], x,
                             consts={"gw": rand(8, 2, 3, 3), "gb": rand(8)},
                             ops={"CONV_2D": 1, "SPLIT": 0, "CONCATENATION": 0}),
        "conv_transpose_k4s2p1": Case([node("ConvTranspose", ["x", "tw", "tb"], strides=[2, 2], pads=[1, 1, 1, 1])],
                                      x, consts={"tw": rand(4, 5, 4, 4), "tb": rand(5)},
                                      ops={"TRANSPOSE_CONV": 1, "SLICE": 0}),
        "conv_transpose_k3s2p1_outpad1": Case(
            [node("ConvTranspose", ["x", "tw"], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])], x,
            consts={"tw": rand(4, 5, 3, 3)}, ops={"TRANSPOSE_CONV": 1, "SLICE": 1}),
        "conv_transpose_k2s2": Case([node("ConvTranspose", ["x", "tw"], strides=[2, 2])], x,
                                    consts={"tw": rand(4, 3, 2, 2)}),
    }
    return cases


def _linear_cases() -> dict[str, Case]:
    return {
        "gemm_transB_bias": Case([node("Gemm", ["x", "w", "b"], transB=1)], {"x": (3, 16)},
                                 consts={"w": rand(10, 16), "b": rand(10)}, ops={"FULLY_CONNECTED": 1}),
        "gemm_transA_alpha_beta": Case([node("Gemm", ["x", "w", "b"], transA=1, alpha=0.5, beta=2.0)], {"x": (16, 3)},
                                       consts={"w": rand(16, 10), "b": rand(1, 10)}),
        "gemm_full_c": Case([node("Gemm", ["x", "w", "c"], transB=1, alpha=2.0, beta=0.5)], {"x": (3, 16)},
                            consts={"w": rand(10, 16), "c": rand(3, 10)}),
        "gemm_computed_b": Case([node("Gemm", ["x", "b_in", "c"], alpha=1.5, transB=1)], {"x": (3, 16), "b_in": (10, 16)},
                                consts={"c": rand(10)}),
        "matmul_2d_const": Case([node("MatMul", ["x", "w"])], {"x": (4, 16)}, consts={"w": rand(16, 8)}),
        "matmul_3d_const_with_bias_add": Case([node("MatMul", ["x", "w"], ["m"]), node("Add", ["m", "b"])],
                                              {"x": (2, 5, 16)}, consts={"w": rand(16, 8), "b": rand(8)},
                                              ops={"FULLY_CONNECTED": 1, "ADD": 0}),
        "matmul_batched": Case([node("MatMul", ["a", "bm"])], {"a": (2, 3, 5, 8), "bm": (2, 3, 8, 4)},
                               ops={"BATCH_MATMUL": 1}),
        "matmul_broadcast_batch": Case([node("MatMul", ["a", "bm"])], {"a": (2, 3, 5, 8), "bm": (8, 4)}),
        "matmul_transposed_operand": Case(
            [node("Transpose", ["bm"], ["bt"], perm=[0, 2, 1]), node("MatMul", ["a", "bt"])],
            {"a": (2, 5, 8), "bm": (2, 4, 8)}, ops={"BATCH_MATMUL": 1, "TRANSPOSE": 0}),
    }


def _elementwise_cases() -> dict[str, Case]:
    x = {"x": (2, 4, 5, 6)}
    cases = {
        "add_channel_const": Case([node("Add", ["x", "c"])], x, consts={"c": rand(4, 1, 1)}, nchw_prelude=True,
                                  ops={"TRANSPOSE": 2}),
        "add_two_activations": Case([node("Add", ["x", "z"])], {"x": (2, 4, 5, 6), "z": (2, 4, 5, 6)},
                                    nchw_prelude=True),
        "add_broadcast_activation": Case([node("Add", ["x", "z"])], {"x": (2, 4, 5, 6), "z": (5, 6)}),
        "sub_row_const": Case([node("Sub", ["c", "x"])], x, consts={"c": rand(6)}, nchw_prelude=True),
        "mul_scalar": Case([node("Mul", ["x", "s"])], x, consts={"s": np.array(1.7, np.float32)}, nchw_prelude=True),
        "div_const": Case([node("Div", ["x", "d"])], x, consts={"d": rand(1, 4, 5, 1) + 3.0}, nchw_prelude=True),
        "max_min": Case([node("Max", ["x", "c"], ["m"]), node("Min", ["m", "c2"])], x,
                        consts={"c": np.array(-0.5, np.float32), "c2": rand(4, 1, 1)}),
        "max_of_three_broadcast": Case([node("Max", ["x", "z", "c"])], {"x": (2, 4, 5, 6), "z": (5, 6)},
                                       consts={"c": rand(4, 1, 1)}, ops={"MAXIMUM": 2}),
        "min_of_three": Case([node("Min", ["x", "z", "w"])], {"x": (2, 4, 5, 6), "z": (2, 4, 5, 6), "w": (2, 4, 5, 6)},
                             nchw_prelude=True, ops={"MINIMUM": 2}),
        "elu_alpha_2": Case([node("Elu", ["x"], alpha=2.0)], x, nchw_prelude=True, ops={"ELU": 1}),
        "relu": Case([node("Relu", ["x"])], x, ops={"RELU": 1}),
        "conv_relu_fused": Case([node("Relu", ["x"])], x, nchw_prelude=True, ops={"RELU": 0, "CONV_2D": 1}),
        "sigmoid": Case([node("Sigmoid", ["x"])], x),
        "tanh": Case([node("Tanh", ["x"])], x),
        "leaky_relu": Case([node("LeakyRelu", ["x"], alpha=0.2)], x, nchw_prelude=True),
        "prelu_channel": Case([node("PRelu", ["x", "slope"])], x, consts={"slope": rand(4, 1, 1)}, nchw_prelude=True),
        "unary_chain": Case(
            [node("Abs", ["x"], ["a"]), node("Sqrt", ["a"], ["s"]), node("Neg", ["s"], ["n"]),
             node("Exp", ["n"], ["e"]), node("Sub", ["e", "half"], ["d"]), node("Elu", ["d"])], x,
            consts={"half": np.array(0.5, np.float32)}, nchw_prelude=True,
            ops={"ABS": 1, "SQRT": 1, "NEG": 1, "EXP": 1, "ELU": 1}),
        "hard_sigmoid": Case([node("HardSigmoid", ["x"], alpha=1 / 6, beta=0.5)], x),
        "hard_swish": Case([node("HardSwish", ["x"])], x),
        "silu": Case([node("Sigmoid", ["x"], ["s"]), node("Mul", ["x", "s"])], x, nchw_prelude=True,
                     ops={"LOGISTIC": 1, "MUL": 1}),
        "gelu_exact": Case([node("Gelu", ["x"])], x),
        "gelu_tanh": Case([node("Gelu", ["x"], approximate="tanh")], x),
        "gelu_erf_pattern": Case(
            [node("Div", ["x", "sqrt2"], ["d"]), node("Erf", ["d"], ["e"]), node("Add", ["e", "one"], ["a"]),
             node("Mul", ["x", "a"], ["m"]), node("Mul", ["m", "half"])], x,
            consts={"sqrt2": np.array(np.sqrt(2), np.float32), "one": np.array(1.0, np.float32),
                    "half": np.array(0.5, np.float32)}, nchw_prelude=True,
            ops={"GELU": 1, "DIV": 0, "MUL": 0, "ADD": 0}),
        "gelu_erf_pattern_half_first": Case(
            [node("Mul", ["x", "rsqrt2"], ["d"]), node("Erf", ["d"], ["e"]), node("Add", ["one", "e"], ["a"]),
             node("Mul", ["half", "x"], ["h"]), node("Mul", ["h", "a"])], x,
            consts={"rsqrt2": np.array(1 / np.sqrt(2), np.float32), "one": np.array(1.0, np.float32),
                    "half": np.array(0.5, np.float32)}, ops={"GELU": 1, "MUL": 0}),
        "constant_node": Case(
            [node("Constant", [], ["k"], value=numpy_helper.from_array(rand(4, 1, 1, seed=5))), node("Mul", ["x", "k"])],
            x, nchw_prelude=True, ops={"MUL": 1, "TRANSPOSE": 2}),
        "clip_relu6": Case([node("Clip", ["x", "lo", "hi"])], x,
                           consts={"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}, ops={"RELU6": 1}),
        "clip_n1_to_1": Case([node("Clip", ["x", "lo", "hi"])], x,
                             consts={"lo": np.array(-1.0, np.float32), "hi": np.array(1.0, np.float32)},
                             ops={"RELU_N1_TO_1": 1}),
        "clip_general": Case([node("Clip", ["x", "lo", "hi"])], x,
                             consts={"lo": np.array(-0.3, np.float32), "hi": np.array(0.8, np.float32)}),
        "clip_min_only": Case([node("Clip", ["x", "lo"])], x, consts={"lo": np.array(0.25, np.float32)}),
        "identity_dropout": Case([node("Identity", ["x"], ["i"]), node("Dropout", ["i"])], x, nchw_prelude=True),
        # T5's RMSNorm: rsqrt exported as Sqrt then Reciprocal.
        "reciprocal_of_sqrt": Case([node("Abs", ["x"], ["a"]), node("Sqrt", ["a"], ["s"]), node("Reciprocal", ["s"])],
                                   x, nchw_prelude=True, ops={"DIV": 1}),
        # GPT-2's gelu_new and ALBERT: x**3 with a constant exponent (torch exports it float or int64).
        "pow_square": Case([node("Pow", ["x", "two"])], x, consts={"two": np.array(2.0, np.float32)},
                           nchw_prelude=True, ops={"MUL": 1, "POW": 0}),
        "pow_cube_int_exponent": Case([node("Pow", ["x", "three"])], x, consts={"three": np.array(3, np.int64)},
                                      ops={"MUL": 2, "POW": 0}),
        "pow_fourth": Case([node("Pow", ["x", "four"])], x, consts={"four": np.full((1, 1, 6), 4.0, np.float32)},
                           ops={"MUL": 2, "POW": 0}),
        "pow_half": Case([node("Abs", ["x"], ["a"]), node("Pow", ["a", "half"])], x,
                         consts={"half": np.array(0.5, np.float32)}, ops={"SQRT": 1, "POW": 0}),
        "pow_general_const": Case([node("Abs", ["x"], ["a"]), node("Pow", ["a", "e"])], x,
                                  consts={"e": np.array([1.7, -0.5, 2.0, 3.0, 0.25, 1.0], np.float32)},
                                  nchw_prelude=True, ops={"POW": 1}, cpu_ops=("POW",)),
        "pow_runtime_exponent": Case([node("Abs", ["x"], ["a"]), node("Pow", ["a", "z"])],
                                     {"x": (2, 4, 5, 6), "z": (5, 6)}, ops={"POW": 1}, cpu_ops=("POW",)),
    }
    return cases


def _pool_cases() -> dict[str, Case]:
    x = {"x": (1, 3, 11, 12)}
    return {
        "maxpool_k3s2p1": Case([node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], x,
                               ops={"PADV2": 0, "MAX_POOL_2D": 1}),
        "maxpool_k2s2": Case([node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], x),
        "maxpool_ceil": Case([node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)], x),
        "maxpool_same_upper": Case([node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
                                   x),
        "avgpool_k3s1p1_exclude_pad": Case(
            [node("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])], x, ops={"PAD": 0}),
        "avgpool_k3s1p1_include_pad": Case(
            [node("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1)], x,
            ops={"PAD": 1}),
        "avgpool_k3s2p1_exclude_pad": Case(
            [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], x),
        "avgpool_ceil": Case([node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], x),
        "avgpool_k2s2": Case([node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2])], x),
        "global_average_pool": Case([node("GlobalAveragePool", ["x"])], x, nchw_prelude=True, ops={"MEAN": 1}),
        "reduce_mean_hw": Case([node("ReduceMean", ["x", "axes"], keepdims=0)], x, consts={"axes": ints(2, 3)},
                               nchw_prelude=True),
        "reduce_mean_channels": Case([node("ReduceMean", ["x", "axes"])], x, consts={"axes": ints(1)},
                                     nchw_prelude=True),
        "reduce_max_then_sum": Case(
            [node("ReduceMax", ["x", "a1"], ["m"], keepdims=0), node("ReduceSum", ["m", "a2"])], x,
            consts={"a1": ints(1), "a2": ints(-1)}, nchw_prelude=True, ops={"REDUCE_MAX": 1, "SUM": 1}),
        "global_max_pool": Case([node("GlobalMaxPool", ["x"])], x, nchw_prelude=True, ops={"REDUCE_MAX": 1}),
        "reduce_mean_last": Case([node("ReduceMean", ["x", "axes"])], {"x": (2, 5, 8)}, consts={"axes": ints(-1)}),
        # torch.linalg.vector_norm (timm EdgeNeXt's cross-covariance attention), over the last axis and over
        # channels of an NHWC-held tensor.
        "reduce_l2_last": Case([node("ReduceL2", ["x", "axes"])], {"x": (2, 5, 8)}, consts={"axes": ints(-1)},
                               ops={"MUL": 1, "SUM": 1, "SQRT": 1}),
        "reduce_l2_channels_dropped": Case([node("ReduceL2", ["x", "axes"], keepdims=0)], x, consts={"axes": ints(1)},
                                           nchw_prelude=True),
        "reduce_l1_hw": Case([node("ReduceL1", ["x", "axes"])], x, consts={"axes": ints(2, 3)}, nchw_prelude=True,
                             ops={"ABS": 1, "SUM": 1}),
        "reduce_sum_square_all": Case([node("ReduceSumSquare", ["x"], keepdims=0)], {"x": (2, 5, 8)}),
        "reduce_min_then_prod": Case(
            [node("ReduceMin", ["x", "a1"], ["m"]), node("ReduceProd", ["m", "a2"], keepdims=0)], {"x": (2, 5, 3)},
            consts={"a1": ints(1), "a2": ints(-1)}, ops={"REDUCE_MIN": 1, "REDUCE_PROD": 1}, cpu_ops=("REDUCE_PROD",)),
    }


def _shape_cases() -> dict[str, Case]:
    x = {"x": (2, 4, 3, 5)}
    return {
        "reshape": Case([node("Reshape", ["x", "shape"])], x, consts={"shape": ints(2, 12, 5)}, nchw_prelude=True),
        "flatten": Case([node("Flatten", ["x"], axis=1)], x, nchw_prelude=True),
        "flatten_after_global_pool": Case([node("GlobalAveragePool", ["x"], ["g"]), node("Flatten", ["g"])], x,
                                          nchw_prelude=True, ops={"TRANSPOSE": 1}),
        # ViT patch embedding: (N, C, H, W) -> (N, C, H*W) -> (N, H*W, C) is NHWC already.
        "flatten_spatial_tokens": Case(
            [node("Reshape", ["x", "shape"], ["r"]), node("Transpose", ["r"], perm=[0, 2, 1])], x,
            consts={"shape": ints(2, 4, 15)}, nchw_prelude=True, ops={"TRANSPOSE": 1}),
        "transpose": Case([node("Transpose", ["x"], perm=[0, 3, 1, 2])], x, nchw_prelude=True),
        "concat_channels": Case([node("Concat", ["x", "z"], axis=1)], {"x": (2, 4, 3, 5), "z": (2, 2, 3, 5)},
                                nchw_prelude=True),
        "concat_with_const": Case([node("Concat", ["x", "c"], axis=-1)], x, consts={"c": rand(2, 4, 3, 2)}),
        "split_sizes": Case([node("Split", ["x", "sizes"], ["y", "y2"], axis=1)], x, outputs=("y", "y2"),
                            consts={"sizes": ints(1, 3)}, nchw_prelude=True),
        "split_num_outputs": Case([node("Split", ["x"], ["y", "y2"], axis=3, num_outputs=2)], x, outputs=("y", "y2"),
                                  nchw_prelude=True, ops={"SLICE": 2}),
        "split_equal": Case([node("Split", ["x"], ["y", "y2"], axis=1, num_outputs=2)], x, outputs=("y", "y2"),
                            nchw_prelude=True, ops={"SPLIT": 1}),
        "slice_steps": Case([node("Slice", ["x", "st", "en", "ax", "sp"])], x,
                            consts={"st": ints(1, 0), "en": ints(3, 100), "ax": ints(1, 3), "sp": ints(1, 2)},
                            nchw_prelude=True, cpu_ops=("STRIDED_SLICE",)),
        "slice_negative_step": Case([node("Slice", ["x", "st", "en", "ax", "sp"])], x,
                                    consts={"st": ints(-1), "en": ints(-100), "ax": ints(3), "sp": ints(-1)},
                                    cpu_ops=("STRIDED_SLICE",)),
        "slice_simple": Case([node("Slice", ["x", "st", "en"])], x, consts={"st": ints(0, 1, 1), "en": ints(2, 3, 3)},
                             nchw_prelude=True),
        "pad_constant": Case([node("Pad", ["x", "pads"])], x, consts={"pads": ints(0, 0, 1, 2, 0, 1, 0, 1)},
                             nchw_prelude=True),
        "pad_constant_value": Case([node("Pad", ["x", "pads", "v"])], x,
                                   consts={"pads": ints(0, 0, 1, 2, 0, 1, 0, 1), "v": np.array(0.5, np.float32)},
                                   cpu_ops=("PADV2",)),
        "pad_reflect": Case([node("Pad", ["x", "pads"], mode="reflect")], x,
                            consts={"pads": ints(0, 0, 1, 2, 0, 0, 2, 1)}, nchw_prelude=True, cpu_ops=("MIRROR_PAD",)),
        "squeeze_unsqueeze": Case([node("Unsqueeze", ["x", "a0"], ["u"]), node("Squeeze", ["u", "a0"])], x,
                                  consts={"a0": ints(2)}, nchw_prelude=True),
        "unsqueeze_last": Case([node("Unsqueeze", ["x", "a"])], x, consts={"a": ints(-1)}, nchw_prelude=True),
        "gather_scalar_index": Case([node("Gather", ["x", "i"], axis=1)], x, consts={"i": np.array(2, np.int64)},
                                    nchw_prelude=True, ops={"SLICE": 1}),
        "gather_indices": Case([node("Gather", ["x", "i"], axis=3)], x, consts={"i": ints(4, 0, -2)},
                               nchw_prelude=True, ops={"GATHER": 1}, cpu_ops=("GATHER",)),
    }


def _norm_cases() -> dict[str, Case]:
    return {
        "softmax_last": Case([node("Softmax", ["x"])], {"x": (2, 3, 7)}),
        "softmax_channels": Case([node("Softmax", ["x"], axis=1)], {"x": (1, 5, 3, 4)}, nchw_prelude=True,
                                 ops={"TRANSPOSE": 2}),
        "softmax_middle": Case([node("Softmax", ["x"], axis=1)], {"x": (2, 5, 7)}),
        "layer_norm_last": Case([node("LayerNormalization", ["x", "g", "b"], epsilon=1e-5)], {"x": (2, 5, 16)},
                                consts={"g": rand(16), "b": rand(16, seed=3)}, ops={"TRANSPOSE": 0}),
        "layer_norm_nchw_last_two": Case([node("LayerNormalization", ["x", "g"], axis=2)], {"x": (1, 4, 5, 6)},
                                         consts={"g": rand(5, 6)}, nchw_prelude=True),
        "layer_norm_with_statistics": Case(
            [node("LayerNormalization", ["x", "g", "b"], ["y", "mean", "inv_std"], axis=-1)], {"x": (2, 5, 16)},
            outputs=("y", "mean", "inv_std"), consts={"g": rand(16), "b": rand(16, seed=3)}),
        # Channels-last statistics (the prelude conv leaves x NHWC): only the graph input's and
        # output's layout TRANSPOSEs.
        "group_norm_nhwc": Case([node("GroupNormalization", ["x", "g", "b"], num_groups=3, epsilon=1e-3)],
                                {"x": (2, 6, 5, 4)}, consts={"g": rand(6), "b": rand(6, seed=3)}, nchw_prelude=True,
                                ops={"TRANSPOSE": 2}),
        # wav2vec2's feature encoder: Conv1d -> GroupNorm(512 groups = channels) -> GELU.
        "group_norm_after_conv1d": Case(
            [node("Conv", ["x", "w"], ["c"], strides=[5], kernel_shape=[10]),
             node("GroupNormalization", ["c", "g", "b"], num_groups=8)], {"x": (1, 1, 400)},
            consts={"w": rand(8, 1, 10), "g": rand(8), "b": rand(8, seed=3)}),
        "instance_norm_nchw": Case([node("InstanceNormalization", ["x", "g", "b"])], {"x": (2, 3, 5, 7)},
                                   consts={"g": rand(3), "b": rand(3, seed=3)}),
        "instance_norm_1d": Case([node("InstanceNormalization", ["x", "g", "b"], epsilon=1e-2)], {"x": (1, 4, 30)},
                                 consts={"g": rand(4), "b": rand(4, seed=3)}),
    }


def _resize_cases() -> dict[str, Case]:
    x = {"x": (1, 3, 5, 6)}
    scales = {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, 2, 2], np.float32)}

    def resize(**attrs) -> list[onnx.NodeProto]:
        return [node("Resize", ["x", "roi", "scales"], **attrs)]

    return {
        "resize_nearest_asymmetric_floor": Case(
            resize(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"), x, consts=scales,
            ops={"MUL": 1, "RESIZE_NEAREST_NEIGHBOR": 0}),
        "resize_nearest_downsample": Case(
            resize(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
            {"x": (1, 3, 6, 8)}, consts={**scales, "scales": np.array([1, 1, 0.5, 0.5], np.float32)},
            ops={"RESIZE_NEAREST_NEIGHBOR": 1}, cpu_ops=("RESIZE_NEAREST_NEIGHBOR",)),
        "resize_nearest_fractional_align_corners": Case(
            [node("Resize", ["x", "", "", "sizes"], mode="nearest", coordinate_transformation_mode="align_corners",
                  nearest_mode="round_prefer_ceil")], x, consts={"sizes": ints(1, 3, 8, 7)},
            ops={"RESIZE_NEAREST_NEIGHBOR": 1}, cpu_ops=("RESIZE_NEAREST_NEIGHBOR",)),
        "resize_nearest_half_pixel": Case(resize(mode="nearest"), x, consts=scales, nchw_prelude=True),
        "resize_nearest_align_corners": Case(
            resize(mode="nearest", coordinate_transformation_mode="align_corners", nearest_mode="round_prefer_ceil"),
            x, consts=scales),
        "resize_linear_half_pixel": Case(resize(mode="linear"), x, consts=scales, nchw_prelude=True,
                                         ops={"RESIZE_BILINEAR": 1}),
        "resize_linear_align_corners": Case(resize(mode="linear", coordinate_transformation_mode="align_corners"), x,
                                            consts=scales),
        "resize_linear_asymmetric": Case(resize(mode="linear", coordinate_transformation_mode="asymmetric"), x,
                                         consts=scales),
        "resize_linear_pytorch_half_pixel": Case(
            resize(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), x, consts=scales),
        "resize_linear_sizes": Case([node("Resize", ["x", "", "", "sizes"], mode="linear")], x,
                                    consts={"sizes": ints(1, 3, 7, 9)}),
        # No TFLite resize kernel matches these: two constant interpolation matmuls.
        "resize_cubic_matmuls": Case(resize(mode="cubic"), x, consts=scales, nchw_prelude=True,
                                     ops={"FULLY_CONNECTED": 2, "RESIZE_BILINEAR": 0}),
        "resize_cubic_antialias_downsample": Case(
            [node("Resize", ["x", "", "", "sizes"], mode="cubic", antialias=1, exclude_outside=1)],
            {"x": (1, 2, 9, 12)}, consts={"sizes": ints(1, 2, 4, 5)}, ops={"FULLY_CONNECTED": 2}),
        "resize_nearest_ceil_half_pixel": Case(
            [node("Resize", ["x", "", "", "sizes"], mode="nearest", nearest_mode="ceil")], x,
            consts={"sizes": ints(1, 3, 8, 9)}, ops={"FULLY_CONNECTED": 2}),
        "resize_linear_align_corners_downsample": Case(
            [node("Resize", ["x", "", "", "sizes"], mode="linear", coordinate_transformation_mode="align_corners")],
            x, consts={"sizes": ints(1, 3, 3, 4)}),
        "resize_tf_crop_and_resize_extrapolated": Case(
            [node("Resize", ["x", "roi", "", "sizes"], mode="linear", coordinate_transformation_mode="tf_crop_and_resize",
                  extrapolation_value=2.5)], x,
            consts={"roi": np.array([0, 0, -0.2, 0.1, 1, 1, 0.9, 1.3], np.float32), "sizes": ints(1, 3, 4, 4)},
            ops={"FULLY_CONNECTED": 2, "ADD": 1}),
    }


def _rank_lift_cases() -> dict[str, Case]:
    """1-D/3-D windows, dilated pools and 1-D MatMul operands (rewritten by rank_lift.py)."""
    audio = {"x": (1, 4, 50)}
    volume = {"x": (1, 2, 7, 8, 9)}
    return {
        "conv1d_stride2_pad": Case([node("Conv", ["x", "w", "b"], strides=[2], pads=[2, 1], dilations=[2])], audio,
                                   consts={"w": rand(6, 4, 3), "b": rand(6, seed=2)}, ops={"CONV_2D": 1}),
        "conv1d_grouped_same": Case([node("Conv", ["x", "w"], group=2, auto_pad="SAME_UPPER", kernel_shape=[5])],
                                    audio, consts={"w": rand(8, 2, 5)}),
        "conv_transpose1d": Case([node("ConvTranspose", ["x", "w"], strides=[2], pads=[1, 1], output_padding=[1])],
                                 audio, consts={"w": rand(4, 3, 3)}, ops={"TRANSPOSE_CONV": 1}),
        "maxpool1d_ceil": Case([node("MaxPool", ["x"], kernel_shape=[3], strides=[2], ceil_mode=1)], audio),
        "avgpool1d_pad": Case([node("AveragePool", ["x"], kernel_shape=[4], strides=[3], pads=[1, 2])], audio),
        "maxpool3d": Case([node("MaxPool", ["x"], kernel_shape=[3, 2, 3], strides=[2, 2, 1], pads=[1, 0, 1, 1, 1, 0])],
                          volume, ops={"MAX_POOL_2D": 2}),
        "avgpool3d_count_include_pad": Case(
            [node("AveragePool", ["x"], kernel_shape=[2, 3, 3], strides=[1, 2, 2], pads=[1, 1, 0, 0, 1, 1],
                  count_include_pad=1)], volume),
        # Dilated pools are taps of a padded input: XNNPACK runs neither the lowest-value PADV2
        # nor strided SLICEs (rare in real models; correct on the CPU kernels).
        "maxpool_dilated": Case([node("MaxPool", ["x"], kernel_shape=[3, 3], dilations=[2, 2], pads=[1, 2, 1, 0])],
                                {"x": (1, 3, 11, 12)}, ops={"MAX_POOL_2D": 0}, cpu_ops=("PADV2",)),
        "avgpool_dilated_ceil": Case(
            [node("AveragePool", ["x"], kernel_shape=[2, 3], strides=[2, 2], dilations=[2, 2], ceil_mode=1,
                  pads=[1, 1, 1, 1])], {"x": (1, 3, 11, 12)}, nchw_prelude=True, cpu_ops=("STRIDED_SLICE",)),
        "conv_transpose_grouped": Case([node("ConvTranspose", ["x", "w", "b"], group=2, strides=[2, 2], pads=[1, 0, 0, 1])],
                                       {"x": (1, 4, 5, 6)}, consts={"w": rand(4, 3, 3, 3), "b": rand(6, seed=2)},
                                       nchw_prelude=True, ops={"TRANSPOSE_CONV": 2}),
        "conv_transpose_dilated": Case([node("ConvTranspose", ["x", "w"], dilations=[2, 3], pads=[1, 1, 1, 1])],
                                       {"x": (1, 3, 5, 6)}, consts={"w": rand(3, 2, 3, 2)}, ops={"TRANSPOSE_CONV": 1}),
        # output_shape one past what the kernel reaches: that row and column hold only the bias.
        "conv_transpose_output_past_reach": Case(
            [node("ConvTranspose", ["x", "w", "b"], strides=[3, 2], output_shape=[16, 13])], {"x": (1, 3, 5, 6)},
            consts={"w": rand(3, 2, 3, 3), "b": rand(2, seed=2)}),
        "matmul_vector_times_matrix": Case([node("MatMul", ["x", "w"])], {"x": (16,)}, consts={"w": rand(16, 5)}),
        "matmul_batched_times_vector": Case([node("MatMul", ["x", "v"])], {"x": (2, 3, 16), "v": (16,)}),
    }


def residual_classifier(c: int = 8) -> Case:
    """A small int8 test net: conv, ReLU, conv, residual add, global pool, classifier (1x3x10x10 input)."""
    return Case(
        [node("Conv", ["x", "w0", "b0"], ["h"], pads=[1, 1, 1, 1]), node("Relu", ["h"], ["r"]),
         node("Conv", ["r", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
         node("Add", ["r", "a"], ["s"]), node("GlobalAveragePool", ["s"], ["p"]),
         node("Flatten", ["p"], ["f"]), node("Gemm", ["f", "wf", "bf"], ["y"], transB=1)],
        {"x": (1, 3, 10, 10)},
        consts={"w0": rand(c, 3, 3, 3, seed=2, scale=0.5), "b0": rand(c, seed=3, scale=0.1),
                "w1": rand(c, c, 3, 3, seed=4, scale=0.2), "b1": rand(c, seed=5, scale=0.1),
                "wf": rand(5, c, seed=6, scale=0.5), "bf": rand(5, seed=7, scale=0.1)})


CASES: dict[str, Case] = {
    **_conv_cases(), **_linear_cases(), **_elementwise_cases(), **_pool_cases(), **_shape_cases(),
    **_norm_cases(), **_resize_cases(), **_rank_lift_cases(),
}


def read_ops(path: Path) -> list[tuple[str, list[str], list[str]]]:
    """(op name, non-constant input tensor names, output tensor names) of a .tflite file."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    graph = model.subgraphs[0]
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}

    def tensor_name(i: int) -> str:
        name = graph.tensors[i].name
        return name.decode() if isinstance(name, bytes) else name

    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex].builtinCode
        inputs = [tensor_name(i) for i in op.inputs if i >= 0 and graph.tensors[i].buffer == 0]
        ops.append((names[code], inputs, [tensor_name(i) for i in op.outputs]))
    return ops
