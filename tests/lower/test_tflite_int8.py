"""int8 TFLite lowering of QDQ graphs, op family by op family, checked against onnxruntime.

Each case is one of the fp32 op cases (tflite_cases.CASES), quantized by edgec's quantize
pass on random calibration samples, lowered to int8 and run in LiteRT with XNNPACK and with
the builtin kernels. The int8 reference is onnxruntime running the QDQ graph; both LiteRT
paths must be within one output quantization step of it on >= 99% of elements. The
flatbuffer is read back to check that the op under test runs in int8 (int8 output tensor)
and that XNNPACK took every operator except the int8 kernels it does not have.

The helpers here (quantize, LSB agreement, flatbuffer reading, per-tensor comparison) are
shared with test_tflite_int8_zoo.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgec.fsutil import atomic_write_bytes
from edgec.ir import clone
from edgec.lower.tflite import build_flatbuffer, lower_tflite
from edgec.lower.tflite.layout import inverse
from edgec.quantization import quantize_model
from edgec.runtimes.litert import LiteRTRuntime
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.targets import get_target
from tflite_cases import CASES, Case, node, rand

TARGET = get_target("x86_64-int8")
MIN_LSB_AGREEMENT = 0.99
CALIBRATION_SAMPLES = 16
_OPS = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


# -- shared helpers ------------------------------------------------------------------------

def random_samples(model: ir.Model, count: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(v.shape.numpy()).astype(np.float32) for v in model.graph.inputs]
            for _ in range(count)]


def quantize(model: ir.Model, samples: int = CALIBRATION_SAMPLES, seed: int = 0) -> tuple[ir.Model, dict]:
    return quantize_model(model, random_samples(model, samples, seed))


def output_steps(qdq: ir.Model, info: dict) -> list[float | None]:
    """Each output's quantization step; None for an output a float op computes."""
    return [info["activations"].get(v.name, {}).get("scale") for v in qdq.graph.outputs]


def lsb_agreement(outputs, reference, steps) -> float:
    """Fraction of output elements within one quantization step of the reference (float
    outputs: within float32 rounding of it)."""
    close = [np.abs(o.astype(np.float64) - r) <= (s * 1.001 if s else 1e-5 * np.abs(r).max())
             for o, r, s in zip(outputs, reference, steps)]
    return float(np.concatenate([c.reshape(-1) for c in close]).mean())


def read_flatbuffer(path: Path) -> tuple[schema.ModelT, schema.SubGraphT]:
    model = schema.ModelT.InitFromPackedBuf(bytearray(Path(path).read_bytes()), 0)
    return model, model.subgraphs[0]


def op_name(model: schema.ModelT, op: schema.OperatorT) -> str:
    return _OPS[model.operatorCodes[op.opcodeIndex].builtinCode]


def ops_of(model: schema.ModelT, graph: schema.SubGraphT, name: str) -> list[schema.OperatorT]:
    return [op for op in graph.operators if op_name(model, op) == name]


def float_tensors_inside(graph: schema.SubGraphT) -> list[str]:
    """Float32 tensors other than the signature's: what an all-integer model must not have."""
    edges = set(graph.inputs) | set(graph.outputs)
    return [t.name.decode() for i, t in enumerate(graph.tensors)
            if t.type == schema.TensorType.FLOAT32 and i not in edges]


@dataclasses.dataclass
class Int8Run:
    qdq: ir.Model
    info: dict
    report: dict
    path: Path
    agreement: dict[str, float]  # "xnnpack" / "builtin" -> LSB agreement with onnxruntime
    delegation: dict


def lower_and_run(qdq: ir.Model, info: dict, path: Path, inputs: list[list[np.ndarray]], io: str = "float",
                  builtin: bool = True) -> Int8Run:
    """Lower `qdq` to int8, run it in LiteRT (XNNPACK, and the builtin kernels when asked) on
    `inputs` and measure the agreement with onnxruntime's QDQ reference."""
    report = lower_tflite(qdq, TARGET, path, io=io)
    reference = OnnxRuntime.from_ir(qdq, optimize=False)
    expected = [reference.run(x) for x in inputs]
    steps = output_steps(qdq, info)
    agreement, delegation = {}, {}
    for kind in ("xnnpack", "builtin") if builtin else ("xnnpack",):
        runtime = LiteRTRuntime(path, xnnpack=kind == "xnnpack")
        got = [_run_with_io(runtime, report, x, io) for x in inputs]
        agreement[kind] = lsb_agreement([g for o in got for g in o], [e for o in expected for e in o], steps * len(inputs))
        if kind == "xnnpack":
            delegation = runtime.delegation()
    return Int8Run(qdq, info, report, Path(path), agreement, delegation)


def _run_with_io(runtime: LiteRTRuntime, report: dict, x: list[np.ndarray], io: str) -> list[np.ndarray]:
    if io == "float":
        return runtime.run(x)
    fed = [np.clip(np.rint(a / s["scale"]) + s["zero_point"], -128, 127).astype(np.int8)
           for a, s in zip(x, report["inputs"])]
    out = runtime.run(fed)
    return [(o.astype(np.float32) - s["zero_point"]) * s["scale"] for o, s in zip(out, report["outputs"])]


def per_tensor_agreement(qdq: ir.Model, inputs: list[np.ndarray], tmp_path: Path) -> dict[str, float]:
    """For every int8 tensor of the artifact: the fraction of its elements within 1 LSB of
    what onnxruntime's QDQ graph computes for it *from the artifact's own int8 inputs to that
    op* (each QuantizeLinear's consumers are fed LiteRT's tensor). Unlike the end-to-end
    figure, one rounding tie early in a deep network cannot spread into later layers here,
    so every op is held to its own 1 LSB. Runs the builtin kernels, which keep every tensor."""
    data, ctx, _ = build_flatbuffer(qdq)
    path = tmp_path / "per_tensor.tflite"
    atomic_write_bytes(path, data)
    interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    for detail, x in zip(interp.get_input_details(), inputs):
        interp.set_tensor(detail["index"], x)
    interp.invoke()
    held = ctx.quantized_values()
    litert = {name: interp.get_tensor(h.tensor).transpose(inverse(h.perm)) for name, h in held.items()}

    cut = clone(qdq)
    computed = []
    for q in [n for n in cut.graph if n.op_type == "QuantizeLinear"]:
        produced = q.outputs[0]
        name = produced.name.removesuffix("/q")
        fed = ir.Value(name=f"{produced.name}/fed", shape=produced.shape, type=ir.TensorType(ir.DataType.INT8))
        for user, index in list(produced.uses()):
            user.replace_input_with(index, fed)
        cut.graph.inputs.append(fed)
        cut.graph.outputs.append(produced)
        computed.append(name)
    feeds = {f"{name}/q/fed": litert[name] for name in computed}
    runtime = OnnxRuntime.from_ir(cut, optimize=False)
    names = [v.name for v in cut.graph.inputs]
    values = dict(zip([v.name for v in qdq.graph.inputs], inputs)) | feeds
    outputs = runtime.run([values[n] for n in names])[len(qdq.graph.outputs):]
    return {name: float(np.mean(np.abs(o.astype(int) - litert[name].astype(int)) <= 1))
            for name, o in zip(computed, outputs)}


# -- op families ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Int8Case:
    ops: tuple[str, ...]  # TFLite ops that must appear with an int8 output
    cpu_ops: tuple[str, ...] = ()  # int8 kernels XNNPACK does not have (left to LiteRT's own)
    integer_only: bool = True  # no float tensor but the signature's


INT8_CASES = {
    # convolutions: per-channel int8 filters, int32 bias, int8 PAD (zero point) for explicit padding
    "conv_same": Int8Case(("CONV_2D",)),
    "conv_stride2_pad1": Int8Case(("CONV_2D", "PAD")),
    "conv_valid_no_bias": Int8Case(("CONV_2D",)),
    "conv_dilated": Int8Case(("CONV_2D",)),
    "conv_relu_fused": Int8Case(("CONV_2D",)),
    "grouped_conv": Int8Case(("CONV_2D",)),
    "depthwise": Int8Case(("DEPTHWISE_CONV_2D",)),
    "depthwise_stride2_multiplier2": Int8Case(("DEPTHWISE_CONV_2D", "PAD")),
    "conv_transpose_k4s2p1": Int8Case(("TRANSPOSE_CONV",)),
    "conv_transpose_k3s2p1_outpad1": Int8Case(("TRANSPOSE_CONV", "SLICE")),
    # matrix products
    "gemm_transB_bias": Int8Case(("FULLY_CONNECTED",)),
    "matmul_2d_const": Int8Case(("FULLY_CONNECTED",)),
    "matmul_3d_const_with_bias_add": Int8Case(("FULLY_CONNECTED", "ADD")),
    "matmul_batched": Int8Case(("BATCH_MATMUL",), cpu_ops=("BATCH_MATMUL",)),
    "matmul_transposed_operand": Int8Case(("BATCH_MATMUL",), cpu_ops=("BATCH_MATMUL",)),
    # elementwise arithmetic (constant operands are int8 on their own grid)
    "add_two_activations": Int8Case(("ADD",)),
    "add_channel_const": Int8Case(("ADD",)),
    "add_broadcast_activation": Int8Case(("ADD",)),
    "sub_row_const": Int8Case(("SUB",)),
    "mul_scalar": Int8Case(("MUL",)),
    "silu": Int8Case(("LOGISTIC", "MUL")),
    # activations; a ReLU whose output grid starts at 0 is a requantizing QUANTIZE
    "relu": Int8Case(("QUANTIZE",)),
    "clip_relu6": Int8Case(("QUANTIZE",)),
    "clip_n1_to_1": Int8Case(("RELU_N1_TO_1",), cpu_ops=("RELU_N1_TO_1",)),
    "clip_general": Int8Case(("MAXIMUM", "MINIMUM"), cpu_ops=("MAXIMUM", "MINIMUM")),
    "leaky_relu": Int8Case(("LEAKY_RELU",)),
    "prelu_channel": Int8Case(("PRELU",), cpu_ops=("PRELU",)),
    "sigmoid": Int8Case(("LOGISTIC",)),
    "tanh": Int8Case(("TANH",)),
    "hard_swish": Int8Case(("HARD_SWISH",), cpu_ops=("HARD_SWISH",)),
    "softmax_last": Int8Case(("SOFTMAX",), cpu_ops=("SOFTMAX",)),
    "softmax_channels": Int8Case(("SOFTMAX",), cpu_ops=("SOFTMAX",)),
    # pooling and reductions
    "maxpool_k3s2p1": Int8Case(("MAX_POOL_2D",)),
    "maxpool_same_upper": Int8Case(("MAX_POOL_2D",)),
    "avgpool_k2s2": Int8Case(("AVERAGE_POOL_2D",), cpu_ops=("AVERAGE_POOL_2D",)),
    "avgpool_k3s1p1_include_pad": Int8Case(("AVERAGE_POOL_2D", "PAD"), cpu_ops=("AVERAGE_POOL_2D",)),
    "global_average_pool": Int8Case(("MEAN",)),
    "reduce_mean_last": Int8Case(("MEAN",)),
    # data movement: same parameters in and out
    "reshape": Int8Case(("RESHAPE",)),
    "flatten_spatial_tokens": Int8Case(("RESHAPE",)),
    "transpose": Int8Case(("TRANSPOSE",)),
    "squeeze_unsqueeze": Int8Case(("RESHAPE",)),
    "concat_channels": Int8Case(("CONCATENATION",)),
    "concat_with_const": Int8Case(("CONCATENATION",)),
    "split_equal": Int8Case(("SPLIT",)),
    "split_sizes": Int8Case(("SLICE",)),
    "slice_simple": Int8Case(("SLICE",)),
    "slice_steps": Int8Case(("STRIDED_SLICE",), cpu_ops=("STRIDED_SLICE",)),
    "pad_constant": Int8Case(("PAD",)),
    "pad_constant_value": Int8Case(("PADV2",), cpu_ops=("PADV2",)),
    "resize_linear_half_pixel": Int8Case(("RESIZE_BILINEAR",)),
    "resize_nearest_half_pixel": Int8Case(("MUL",)),
}


@pytest.mark.parametrize("name", sorted(INT8_CASES))
def test_op_runs_in_int8_within_one_lsb(name, tmp_path):
    case = INT8_CASES[name]
    model = CASES[name].model()
    qdq, info = quantize(model)
    run = lower_and_run(qdq, info, tmp_path / f"{name}.tflite", random_samples(model, 2, seed=7))

    assert run.agreement["xnnpack"] >= MIN_LSB_AGREEMENT, run.agreement
    assert run.agreement["builtin"] >= MIN_LSB_AGREEMENT, run.agreement
    fb, graph = read_flatbuffer(run.path)
    for op in case.ops:
        found = ops_of(fb, graph, op)
        assert found, f"no {op} in {run.report['ops']}"
        assert all(graph.tensors[o.outputs[0]].type == schema.TensorType.INT8 for o in found), f"{op} is not int8"
    if case.integer_only:
        assert float_tensors_inside(graph) == []
        assert run.report["quantized"]["float_islands"] == []
    assert set(run.delegation["not_delegated"]) <= set(case.cpu_ops), run.delegation


# Ops with no int8 kernel stay float between DEQUANTIZE and QUANTIZE, as the QDQ graph says.
# name -> (the ONNX op reported as float, a TFLite op of the island that reads its input)
FLOAT_ISLANDS = {
    "layer_norm_nchw_last_two": ("LayerNormalization", "SUB"),
    "div_const": ("Div", "DIV"),
    "gelu_erf_pattern": ("Erf", "GELU"),
    "global_max_pool": ("GlobalMaxPool", "REDUCE_MAX"),
}


@pytest.mark.parametrize("name", sorted(FLOAT_ISLANDS))
def test_op_without_int8_kernel_is_a_float_island(name, tmp_path):
    model = CASES[name].model()
    qdq, info = quantize(model)
    run = lower_and_run(qdq, info, tmp_path / f"{name}.tflite", random_samples(model, 2, seed=7))

    assert run.agreement["xnnpack"] >= MIN_LSB_AGREEMENT, run.agreement
    onnx_op, island_op = FLOAT_ISLANDS[name]
    assert onnx_op in {i["op"] for i in run.report["quantized"]["float_islands"]}
    # The prelude conv runs in int8; the island reads its output through a DEQUANTIZE.
    fb, graph = read_flatbuffer(run.path)
    producer = {t: op_name(fb, op) for op in graph.operators for t in op.outputs}
    reader = ops_of(fb, graph, island_op)[0]
    assert graph.tensors[reader.inputs[0]].type == schema.TensorType.FLOAT32
    assert producer[reader.inputs[0]] == "DEQUANTIZE"
    assert ops_of(fb, graph, "CONV_2D") and run.delegation["fraction"] == 1.0


# -- quantization parameters in the flatbuffer ---------------------------------------------

def _conv_chain():
    """conv 3x3 -> relu -> depthwise 3x3 -> relu6 -> 1x1 conv -> global pool -> Gemm."""
    consts = {"w1": rand(8, 3, 3, 3, seed=1), "b1": rand(8, seed=2), "dw": rand(8, 1, 3, 3, seed=3),
              "db": rand(8, seed=4), "w2": rand(6, 8, 1, 1, seed=5), "fc": rand(4, 6, seed=6),
              "fcb": rand(4, seed=7), "lo": np.float32(0), "hi": np.float32(6)}
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        node("Relu", ["c1"], ["r1"]),
        node("Conv", ["r1", "dw", "db"], ["c2"], pads=[1, 1, 1, 1], group=8),
        node("Clip", ["c2", "lo", "hi"], ["r2"]),
        node("Conv", ["r2", "w2"], ["c3"]),
        node("GlobalAveragePool", ["c3"], ["p"]),
        node("Flatten", ["p"], ["f"]),
        node("Gemm", ["f", "fc", "fcb"], ["y"], transB=1),
    ]
    return Case(nodes, {"x": (1, 3, 12, 12)}, consts=consts).model()


@pytest.fixture(scope="module")
def conv_chain(tmp_path_factory):
    model = _conv_chain()
    qdq, info = quantize(model)
    path = tmp_path_factory.mktemp("chain") / "chain.tflite"
    run = lower_and_run(qdq, info, path, random_samples(model, 2, seed=7))
    return run


def test_weights_are_int8_per_output_channel_with_int32_bias(conv_chain):
    fb, graph = read_flatbuffer(conv_chain.path)
    expected_dims = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}
    for op, dim in expected_dims.items():
        for found in ops_of(fb, graph, op):
            w, b, x = (graph.tensors[i] for i in (found.inputs[1], found.inputs[2], found.inputs[0]))
            channels = w.shape[dim]
            assert w.type == schema.TensorType.INT8
            assert w.quantization.quantizedDimension == dim
            assert len(w.quantization.scale) == channels and not any(w.quantization.zeroPoint)
            data = np.frombuffer(bytes(fb.buffers[w.buffer].data), np.int8)
            assert data.min() >= -127  # narrow range
            assert b.type == schema.TensorType.INT32 and list(b.shape) == [channels]
            expected_bias_scale = np.float32(x.quantization.scale[0]) * np.asarray(w.quantization.scale, np.float32)
            np.testing.assert_allclose(b.quantization.scale, expected_bias_scale, rtol=1e-6)
            assert not any(b.quantization.zeroPoint)
    depthwise = ops_of(fb, graph, "DEPTHWISE_CONV_2D")[0]
    assert list(graph.tensors[depthwise.inputs[1]].shape) == [1, 3, 3, 8]  # 1HWC


def test_activations_carry_the_qdq_graphs_parameters(conv_chain):
    _, ctx, _ = build_flatbuffer(conv_chain.qdq)
    held = ctx.quantized_values()
    acts = conv_chain.info["activations"]
    assert set(acts) <= set(held)
    for name, params in acts.items():
        tensor = ctx.graph.tensors[held[name].tensor]
        assert tensor.type == schema.TensorType.INT8
        assert tensor.quantization.scale == [pytest.approx(params["scale"], rel=1e-7)]
        assert tensor.quantization.zeroPoint == [params["zero_point"]]


def test_integer_cnn_quantizes_only_at_the_edges(conv_chain):
    fb, graph = read_flatbuffer(conv_chain.path)
    assert conv_chain.report["ops"]["QUANTIZE"] == 1 and conv_chain.report["ops"]["DEQUANTIZE"] == 1
    quantize_op = ops_of(fb, graph, "QUANTIZE")[0]
    dequantize_op = ops_of(fb, graph, "DEQUANTIZE")[0]
    assert quantize_op.inputs[0] in graph.inputs and dequantize_op.outputs[0] in graph.outputs
    assert float_tensors_inside(graph) == []
    # Relu and Clip(0, 6) are fused into the convolutions: no activation ops of their own.
    assert not {"RELU", "RELU6", "QUANTIZE"} & {op_name(fb, o) for o in graph.operators[1:]}
    # The stride-2 conv's padding is an int8 PAD, which fills with the zero point (real 0).
    assert conv_chain.report["ops"]["PAD"] == 1 and "PADV2" not in conv_chain.report["ops"]
    # One layout change, at the input; the pooled features leave by RESHAPE.
    assert conv_chain.report["layout_transposes"] == 1
    assert conv_chain.agreement["xnnpack"] >= MIN_LSB_AGREEMENT
    assert conv_chain.agreement["builtin"] >= MIN_LSB_AGREEMENT
    assert conv_chain.delegation["fraction"] == 1.0


def test_int8_io_has_int8_signature_and_no_conversions(conv_chain, tmp_path):
    model = _conv_chain()
    run = lower_and_run(conv_chain.qdq, conv_chain.info, tmp_path / "io8.tflite", random_samples(model, 2, seed=7),
                        io="int8")
    runtime = LiteRTRuntime(run.path)
    assert [s.dtype for s in runtime.inputs] == [np.dtype(np.int8)]
    assert [s.dtype for s in runtime.outputs] == [np.dtype(np.int8)]
    assert "QUANTIZE" not in run.report["ops"] and "DEQUANTIZE" not in run.report["ops"]
    acts = conv_chain.info["activations"]
    assert run.report["inputs"][0]["scale"] == pytest.approx(acts["x"]["scale"], rel=1e-7)
    assert run.report["outputs"][0]["zero_point"] == acts["y"]["zero_point"]
    assert run.agreement["xnnpack"] >= MIN_LSB_AGREEMENT and run.agreement["builtin"] >= MIN_LSB_AGREEMENT
    assert run.delegation["fraction"] == 1.0


def test_every_int8_tensor_matches_onnxruntime_from_the_same_inputs(conv_chain, tmp_path):
    x = random_samples(_conv_chain(), 1, seed=3)[0]
    agreement = per_tensor_agreement(conv_chain.qdq, x, tmp_path)
    assert len(agreement) == len(conv_chain.info["activations"])
    assert min(agreement.values()) >= MIN_LSB_AGREEMENT, agreement


def test_io_option_is_validated(conv_chain, tmp_path):
    from edgec.errors import EdgecError

    with pytest.raises(EdgecError, match="io='uint8'"):
        lower_tflite(conv_chain.qdq, TARGET, tmp_path / "bad.tflite", io="uint8")
    assert not (tmp_path / "bad.tflite").exists()


def test_qdq_graph_from_onnxruntime_quantize_static_lowers(tmp_path):
    """Another tool's QDQ form (onnxruntime's quantize_static, per-channel int8, which drops
    the Relu and Clip before a QuantizeLinear and may give a pair several DequantizeLinears)
    lowers to the same all-integer model."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgec.ir import from_proto, to_proto

    model = _conv_chain()
    onnx.save(to_proto(model), tmp_path / "float.onnx")
    samples = iter(random_samples(model, 16))

    class Samples(CalibrationDataReader):
        def get_next(self):
            sample = next(samples, None)
            return None if sample is None else {"x": sample[0]}

    quantize_static(str(tmp_path / "float.onnx"), str(tmp_path / "qdq.onnx"), Samples(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    qdq = from_proto(onnx.load(tmp_path / "qdq.onnx"))
    report = lower_tflite(qdq, TARGET, tmp_path / "ort.tflite")
    inputs = random_samples(model, 2, seed=7)
    reference = OnnxRuntime.from_ir(qdq, optimize=False)
    runtime = LiteRTRuntime(tmp_path / "ort.tflite")
    output_dq = qdq.graph.outputs[0].producer()
    assert output_dq.op_type == "DequantizeLinear"
    scale = float(output_dq.inputs[1].const_value.numpy())
    for x in inputs:
        assert np.abs(runtime.run(x)[0] - reference.run(x)[0]).max() <= 1.001 * scale
    fb, graph = read_flatbuffer(tmp_path / "ort.tflite")
    assert all(graph.tensors[op.outputs[0]].type == schema.TensorType.INT8
               for name in ("CONV_2D", "DEPTHWISE_CONV_2D") for op in ops_of(fb, graph, name))
    assert report["quantized"]["quantize_ops"] == 1 and report["quantized"]["dequantize_ops"] == 1
    assert runtime.delegation()["fraction"] == 1.0


def test_1d_convolutions_compile_to_int8(tmp_path):
    """wav2vec2's feature encoder: Conv1d stacks. TFLite's convolutions are 2-D; the int8 compile
    lifts them before quantizing, and the file is verified against that QDQ graph and float."""
    import torch

    import edgec

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 10, stride=5), torch.nn.GELU(),
                              torch.nn.Conv1d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU()).eval()
    x = torch.randn(1, 1, 400)
    art = edgec.compile(net, example_inputs=(x,), target="x86_64-int8", out_dir=tmp_path, name="conv1d",
                        formats=["tflite"], calibration="random")
    model, graph = read_flatbuffer(art.paths["tflite"])
    assert len(ops_of(model, graph, "CONV_2D")) == 2
    entry = art.report["verification"]["artifacts"]["tflite"]
    assert entry["faithfulness"]["worst_agreement"] >= 0.99
    assert entry["vs_float"]["outputs"][0]["sqnr_db"] > 15
