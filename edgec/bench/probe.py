"""Tiny probe artifacts: one small conv net written as TFLite, ONNX or a TVM library.

They prove a device really executes artifacts (the device tests, scripts/cuda_check.py) and
give the bench tests something real to time. They are built without the compile pipeline, so
a device check does not depend on the TFLite lowering: the TFLite file straight from
the schema's object API, the ONNX file from onnx.helper, the TVM library by Relax's ONNX
frontend. `size` scales the spatial input, so the same net at size 64 costs about 16x size 16:
the regression gate's tests rely on that to make a "deliberately slower" artifact.

The net (NHWC for TFLite, NCHW for ONNX/TVM; same weights, so same numbers):
    x[1, C, S, S] -> conv3x3(C -> F, pad 1) -> relu -> conv1x1(F -> F) -> out[1, F, S, S]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.fsutil import atomic_write_bytes

IN_CHANNELS = 8
FEATURES = 16
SEED = 0


def probe_weights() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w1 OIHW, b1, w2 OIHW, b2), fixed by SEED so every format computes the same function."""
    rng = np.random.default_rng(SEED)
    w1 = rng.standard_normal((FEATURES, IN_CHANNELS, 3, 3)).astype(np.float32) * 0.2
    b1 = rng.standard_normal(FEATURES).astype(np.float32) * 0.1
    w2 = rng.standard_normal((FEATURES, FEATURES, 1, 1)).astype(np.float32) * 0.2
    b2 = rng.standard_normal(FEATURES).astype(np.float32) * 0.1
    return w1, b1, w2, b2


def probe_input(size: int, layout: str = "NCHW", seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((1, IN_CHANNELS, size, size)).astype(np.float32)
    return x.transpose(0, 2, 3, 1).copy() if layout == "NHWC" else x


def probe_reference(x_nchw: np.ndarray) -> np.ndarray:
    """The probe's output in NCHW, computed with numpy (the ground truth for every format)."""
    w1, b1, w2, b2 = probe_weights()
    n, c, h, w = x_nchw.shape
    padded = np.pad(x_nchw, ((0, 0), (0, 0), (1, 1), (1, 1)))
    patches = np.stack([padded[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=2)
    y = np.einsum("nckhw,fck->nfhw", patches, w1.reshape(FEATURES, c, 9)) + b1[None, :, None, None]
    y = np.maximum(y, 0)
    y = np.einsum("nchw,fc->nfhw", y, w2[:, :, 0, 0]) + b2[None, :, None, None]
    return y.astype(np.float32)


def probe_onnx_model(size: int):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, b1, w2, b2 = probe_weights()
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1", "b1"], ["h"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Conv", ["r", "w2", "b2"], ["y"], kernel_shape=[1, 1]),
        ],
        "edgec_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, IN_CHANNELS, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, FEATURES, size, size])],
        initializer=[numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_probe_onnx(path: str | Path, size: int = 32) -> Path:
    return atomic_write_bytes(path, probe_onnx_model(size).SerializeToString())


def write_probe_tflite(path: str | Path, size: int = 32) -> Path:
    """The probe as a float32 NHWC TFLite flatbuffer (CONV_2D with fused ReLU, then CONV_2D)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    w1, b1, w2, b2 = probe_weights()
    buffers = [schema.BufferT()]  # buffer 0: the empty sentinel of non-constant tensors
    tensors = []

    def tensor(name, shape, data=None):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), schema.TensorType.FLOAT32, 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = np.ascontiguousarray(data, dtype=np.float32).reshape(-1).view(np.uint8)
            buffers.append(buf)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    x = tensor("x", (1, size, size, IN_CHANNELS))
    # TFLite conv weights are OHWI.
    k1 = tensor("w1", w1.transpose(0, 2, 3, 1).shape, w1.transpose(0, 2, 3, 1))
    c1 = tensor("b1", b1.shape, b1)
    h = tensor("h", (1, size, size, FEATURES))
    k2 = tensor("w2", w2.transpose(0, 2, 3, 1).shape, w2.transpose(0, 2, 3, 1))
    c2 = tensor("b2", b2.shape, b2)
    y = tensor("y", (1, size, size, FEATURES))

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CONV_2D
    code.version = 1

    def conv(inputs, output, relu):
        opts = schema.Conv2DOptionsT()
        opts.padding = schema.Padding.SAME
        opts.strideW = opts.strideH = opts.dilationWFactor = opts.dilationHFactor = 1
        opts.fusedActivationFunction = (
            schema.ActivationFunctionType.RELU if relu else schema.ActivationFunctionType.NONE
        )
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, list(inputs), [output]
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.Conv2DOptions, opts
        return op

    sub = schema.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.name = tensors, [x], [y], "main"
    sub.operators = [conv((x, k1, c1), h, relu=True), conv((h, k2, c2), y, relu=False)]

    def tensor_map(name, index):
        m = schema.TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    # A signature lets runtimes that address tensors by signature (LiteRT.js) find them.
    sig = schema.SignatureDefT()
    sig.signatureKey, sig.subgraphIndex = "serving_default", 0
    sig.inputs, sig.outputs = [tensor_map("x", x)], [tensor_map("y", y)]

    model = schema.ModelT()
    model.version, model.description = 3, "edgec probe"
    model.operatorCodes, model.subgraphs, model.buffers = [code], [sub], buffers
    model.signatureDefs = [sig]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return atomic_write_bytes(path, bytes(builder.Output()))


def write_probe_tvm(path: str | Path, size: int = 32, target: str = "x86_64-fp32") -> Path:
    """The probe as a TVM Relax library for a target in devices.yaml (plus its signature sidecar)."""
    import onnx_ir

    from edgec.lower.tvm import lower_tvm
    from edgec.targets import get_target

    lower_tvm(onnx_ir.from_proto(probe_onnx_model(size)), get_target(target), path)
    return Path(path)
