"""Sparse TFLite export: compressed weights + DENSIFY that LiteRT decodes exactly, stride-2
convs padded the way XNNPACK's NCHW kernels need, and artifacts that compute what the dense
model with the same zeroed weights computes (host LiteRT, with and without XNNPACK)."""

import numpy as np
import pytest
import torch
from ai_edge_litert import schema_py_generated as schema
from onnx import helper

import edgec
from edgec.errors import EdgecError
from edgec.lower.tflite import lower_tflite
from edgec.lower.tflite.builder import TFLiteGraph
from edgec.lower.tflite.sparse import encode, sparsify_weights
from edgec.passes.prune import magnitude_mask
from edgec.runtimes.litert import LiteRTRuntime
from edgec.targets import get_target, load_registry
from edgec.training import pruning
from helpers import build_model, random_weight


def _densify_model(values, params, shape, path):
    """y = x + DENSIFY(sparse constant): with x = 0, y is the decoded weights (an op after
    DENSIFY gives XNNPACK something to delegate; it unpacks DENSIFY itself)."""
    g = TFLiteGraph()
    sparse = g.add_tensor("w", shape, np.float32, data=values, sparsity=params)
    dense = g.add_tensor("dense", shape, np.float32)
    g.add_op("DENSIFY", [sparse], [dense])
    x, y = g.add_tensor("x", shape, np.float32), g.add_tensor("y", shape, np.float32)
    g.add_op("ADD", [x, dense], [y], schema.AddOptionsT())
    g.inputs.append(x)
    g.outputs.append(y)
    path.write_bytes(g.serialize())
    return path


@pytest.mark.parametrize("shape", [(8, 1, 1, 12), (12, 20)])
@pytest.mark.parametrize("block_rows", [1, 2, 4])
def test_litert_densify_decodes_every_encoding_exactly(tmp_path, shape, block_rows):
    w = random_weight(*shape, seed=block_rows)
    matrix = w.reshape(shape[0], -1)
    w = (matrix * magnitude_mask(matrix, 0.7, (block_rows, 1))).reshape(shape)
    w[0] = 0  # an all-zero output channel: an empty CSR row
    values, params = encode(w, block_rows)
    assert values.size == np.count_nonzero(np.any(w.reshape(-1, block_rows, shape[-1]) != 0, axis=1)) * block_rows
    path = _densify_model(values, params, shape, tmp_path / "d.tflite")
    for xnnpack in (False, True):
        (dense,) = LiteRTRuntime(path, xnnpack=xnnpack).run([np.zeros(shape, np.float32)])
        np.testing.assert_array_equal(dense, w)


def _net(stem_stride_pads=((2, 2), [1, 1, 1, 1]), size=15):
    strides, pads = stem_stride_pads
    w1 = random_weight(16, 8, 1, 1, seed=3)
    w1 *= magnitude_mask(w1.reshape(16, 8), 0.9).reshape(w1.shape)
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], strides=list(strides), pads=pads),
        helper.make_node("Conv", ["c0", "wd"], ["d"], group=8, strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "w1"], ["p"]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1),
    ]
    init = {"w0": random_weight(8, 3, 3, 3, seed=1), "wd": random_weight(8, 1, 3, 3, seed=2), "w1": w1,
            "wf": random_weight(10, 16, seed=4)}
    from edgec.passes import get_pass

    model = build_model(nodes, {"x": [1, 3, size, size]}, ["y"], init)
    return get_pass("shape_inference")(model).model


def _ops(path):
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    sub = model.subgraphs[0]
    return model, sub, [(names[model.operatorCodes[op.opcodeIndex].builtinCode], op) for op in sub.operators]


def test_sparse_lowering_pads_strided_convs_whole_and_reads_weights_through_densify(tmp_path):
    model = _net()  # odd 15x15 input: TFLite SAME would match ONNX's pads 1 on both convs
    info = lower_tflite(model, get_target("wasm-sparse"), tmp_path / "s.tflite")
    tfl, sub, ops = _ops(tmp_path / "s.tflite")
    for name, op in ops:
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and op.builtinOptions.strideH == 2:
            assert op.builtinOptions.padding == schema.Padding.VALID
            pad_op = next(o for n, o in ops if n == "PAD" and o.outputs[0] == op.inputs[0])
            paddings = tfl.buffers[sub.tensors[pad_op.inputs[1]].buffer].data.view(np.int32).reshape(4, 2)
            assert paddings[1:3].tolist() == [[1, 1], [1, 1]]
    densify = [op for name, op in ops if name == "DENSIFY"]
    assert len(densify) == 1 and sub.tensors[densify[0].inputs[0]].sparsity is not None
    readers = [n for n, op in ops if densify[0].outputs[0] in op.inputs]
    assert readers == ["CONV_2D"]  # no stray consumers of the densified weights
    (entry,) = info["sparse"]["encoded_weights"]
    assert entry["shape"] == [16, 1, 1, 8] and entry["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert info["sparse"]["xnnpack_sparse_inference"] is True

    dense_info = lower_tflite(model, get_target("arm64-fp32"), tmp_path / "d.tflite")
    assert "sparse" not in dense_info and dense_info["ops"].get("DENSIFY") is None
    x = np.random.default_rng(0).standard_normal((1, 3, 15, 15)).astype(np.float32)
    (reference,) = LiteRTRuntime(tmp_path / "d.tflite", xnnpack=False).run([x])
    for xnnpack in (False, True):
        (out,) = LiteRTRuntime(tmp_path / "s.tflite", xnnpack=xnnpack).run([x])
        np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)


def test_compiled_pruned_mobilenet_matches_the_dense_model_with_the_same_zeros(tmp_path):
    from edgec import zoo

    m = zoo.build("mobilenet_v2", resolution=64, width=0.5, num_classes=10)
    pruning.prune(m.module, 0.8, "4x1", fc=False)
    sparse = edgec.compile(m.module, example_inputs=m.example_inputs, target="wasm-sparse", out_dir=tmp_path,
                           name="s")
    dense = edgec.compile(m.module, example_inputs=m.example_inputs, target="arm64-fp32", out_dir=tmp_path,
                          name="d", formats=("tflite",))
    lowering = sparse.report["artifacts"][0]["lowering"]
    assert lowering["sparse"]["xnnpack_sparse_inference"] is True
    assert lowering["ops"]["DENSIFY"] == len(lowering["sparse"]["encoded_weights"]) > 30
    assert sparse.paths["tflite"].stat().st_size < 0.5 * dense.paths["tflite"].stat().st_size
    xnnpack = sparse.report["verification"]["artifacts"]["tflite"]["xnnpack"]
    assert xnnpack["delegated"] == xnnpack["nodes"]  # DENSIFY included: the delegate takes it all
    x = m.example_inputs[0].numpy()
    with torch.no_grad():
        expected = m.module(torch.from_numpy(x)).numpy()
    for xnn in (False, True):
        (out,) = LiteRTRuntime(sparse.paths["tflite"], xnnpack=xnn).run([x])
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
        (ref,) = LiteRTRuntime(dense.paths["tflite"], xnnpack=xnn).run([x])
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_sparse_targets_exist_and_refuse_quantized_models(tmp_path):
    reg = load_registry()
    for name in ("arm64-sparse", "wasm-sparse"):
        t = reg.target(name)
        assert t.precision == "fp32" and t.options.get("sparse") is True and "tflite" in t.formats
    qdq = build_model(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
         helper.make_node("Relu", ["dq"], ["y"])],
        {"x": [1, 4]}, {"y": [1, 4]}, {"s": np.array(0.1, np.float32), "z": np.array(0, np.int8)})
    with pytest.raises(EdgecError, match="fp32"):
        lower_tflite(qdq, reg.target("wasm-sparse"), tmp_path / "q.tflite")
    assert not (tmp_path / "q.tflite").exists()


def test_weights_with_few_zeros_stay_dense():
    g = TFLiteGraph()
    w = random_weight(8, 1, 1, 10, seed=9)
    w[:, :, :, :2] = 0  # 20% zeros: below the 30% TensorFlow's converter also stores sparse from
    x = g.add_tensor("x", [1, 4, 4, 10])
    out = g.add_tensor("y", [1, 4, 4, 8])
    g.add_op("CONV_2D", [x, g.add_const(w, "w"), g.add_const(np.zeros(8, np.float32), "b")], [out],
             schema.Conv2DOptionsT(padding=schema.Padding.VALID, strideH=1, strideW=1))
    assert sparsify_weights(g) == []
    assert g.op_counts() == {"CONV_2D": 1}
