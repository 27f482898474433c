"""Float fallback for int8 targets: the layers whose rounding costs most are found by measurement,
kept float until the model is within the budget, and the artifact runs them as float islands."""

import json

import numpy as np
import onnx
import pytest
from ai_edge_litert import schema_py_generated as schema
from onnx import helper

import edgec
from edgec.errors import EdgecError
from edgec.ir import to_proto
from edgec.passes.shape_inference import ShapeInference
from edgec.quantization import quantize_model
from edgec.quantization.calibration import collect_statistics, load_calibration
from edgec.quantization.mixed_precision import choose_precisions, with_followers
from edgec.runtimes.litert import LiteRTRuntime
from edgec.runtimes.onnxrt import OnnxRuntime
from helpers import build_model, random_weight


def _outlier_mlp():
    """fc1 writes one channel ~1000x larger than the others (as LayerNorm outputs of trained
    transformers do), fc2 ignores that channel. Per-tensor int8 of fc1's output then has a step
    that wipes out every channel that matters; in float the rest of the net is harmless."""
    b1 = np.zeros(32, np.float32)
    b1[0] = 3000.0
    w2 = random_weight(32, 32, seed=2) * 0.2
    w2[:, 0] = 0.0
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1, name="fc1"),
             helper.make_node("Reshape", ["h1", "shape"], ["r1"], name="reshape"),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], transB=1, name="fc2"),
             helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
             helper.make_node("Gemm", ["a2", "w3", "b3"], ["y"], transB=1, name="fc3")]
    init = {"w1": random_weight(32, 16, seed=1) * 0.3, "b1": b1, "shape": np.array([1, 32], np.int64),
            "w2": w2, "b2": np.zeros(32, np.float32), "w3": random_weight(10, 32, seed=3) * 0.3,
            "b3": np.zeros(10, np.float32)}
    model = ShapeInference()(build_model(nodes, {"x": [1, 16]}, {"y": [1, 10]}, init)).model
    x = np.random.default_rng(0).standard_normal((120, 16)).astype(np.float32)
    data = load_calibration(x, model)
    return model, data, collect_statistics(model, data)


def test_the_outlier_layers_are_measured_noisiest_and_kept_float():
    model, data, stats = _outlier_mlp()
    result = choose_precisions(model, data, stats, budget=5.0)
    rows = {r["node"]: r for r in result["layers"]}
    # Both sides of the outlier tensor round it coarsely; fc3 alone costs little.
    assert rows["fc1"]["sqnr_db_alone_int8"] < rows["fc3"]["sqnr_db_alone_int8"] - 20
    assert rows["fc2"]["sqnr_db_alone_int8"] < rows["fc3"]["sqnr_db_alone_int8"] - 20
    assert result["baseline_int8"]["loss"] > 5.0  # plain int8 is outside the budget
    assert result["within_budget"] and result["result"]["loss"] <= 5.0
    assert set(result["moved_layers"]) == {"fc1", "fc2"}
    assert rows["fc3"]["precision"] == "int8" and "why" in rows["fc1"]
    # The reshape between two float layers follows them (no rounding left on the outlier
    # tensor), and so does the ReLU reading float fc2.
    assert set(result["nodes"]) == {"fc1", "reshape", "fc2", "relu2"}
    assert result["unit"].startswith("points of top-1")


def test_the_chosen_graph_rounds_only_where_it_should():
    model, data, stats = _outlier_mlp()
    result = choose_precisions(model, data, stats, budget=5.0)
    qdq, info = quantize_model(model, data, statistics=stats, exclude_nodes=frozenset(result["nodes"]))
    assert {f["node"] for f in info["float_nodes"]} == {"fc1", "reshape", "fc2", "relu2"}
    assert {layer["node"] for layer in info["layers"]} == {"fc3"}  # only fc3 has int8 weights
    quantized = set(info["activations"])
    assert not {"h1", "r1", "h2"} & quantized and "a2" in quantized  # a2: fc3's int8 input
    # What the search measured (on these samples) is what the graph computes.
    assert result["evaluation_samples"] == len(data.samples)
    ref, got = OnnxRuntime.from_ir(model), OnnxRuntime.from_ir(qdq, optimize=False)
    agree = np.mean([np.argmax(ref.run(s)[0]) == np.argmax(got.run(s)[0]) for s in data.samples])
    assert agree == pytest.approx(result["result"]["top1_agreement"])


def test_a_loose_budget_keeps_everything_int8_and_bad_budgets_are_refused():
    model, data, stats = _outlier_mlp()
    loose = choose_precisions(model, data, stats, budget=100.0)
    assert loose["moved_layers"] == [] and loose["nodes"] == []
    assert all(r["precision"] == "int8" for r in loose["layers"])
    with pytest.raises(EdgecError, match="accuracy-budget must be >= 0"):
        choose_precisions(model, data, stats, budget=-1.0)


def test_followers_go_float_only_next_to_float_layers():
    model, _, _ = _outlier_mlp()
    nodes = {n.name: n for n in model.graph}
    followers = [nodes["reshape"], nodes["relu2"]]
    assert with_followers({"fc1"}, followers) == {"fc1", "reshape"}
    assert with_followers({"fc3"}, followers) == {"fc3", "relu2"}  # relu2 feeds only fc3
    assert with_followers(set(), followers) == frozenset()


def test_compile_with_a_budget_writes_float_islands_that_litert_runs(tmp_path):
    model, data, _ = _outlier_mlp()
    path = tmp_path / "outlier.onnx"
    onnx.save(to_proto(model), path)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.stack([s[0][0] for s in data.samples]))
    plain = edgec.compile(path, target="x86_64-int8", out_dir=tmp_path / "plain", formats=["tflite"],
                          calibration=calib)
    mixed = edgec.compile(path, target="x86_64-int8", out_dir=tmp_path / "mixed", formats=["tflite"],
                          calibration=calib, accuracy_budget=5.0)
    choice = mixed.report["quantization"]["mixed_precision"]
    assert set(choice["moved_layers"]) == {"fc1", "fc2"}
    assert "mixed_precision" not in plain.report["quantization"]
    lowering = mixed.report["artifacts"][0]["lowering"]["quantized"]
    assert "fc2" in {i["node"] for i in lowering["float_islands"]}  # DEQUANTIZE -> float FC (fc1 reads float x)
    # Of the three FULLY_CONNECTED, only fc3 is int8 in the file.
    fb = schema.ModelT.InitFromPackedBuf(bytearray(mixed.paths["tflite"].read_bytes()), 0)
    graph = fb.subgraphs[0]
    fc = [op for op in graph.operators
          if fb.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.FULLY_CONNECTED]
    weight_types = sorted(graph.tensors[op.inputs[1]].type for op in fc)
    assert weight_types == sorted([schema.TensorType.FLOAT32] * 2 + [schema.TensorType.INT8])
    # The artifact (verified against its QDQ graph by compile) agrees with float where plain int8 does not.
    x = np.random.default_rng(7).standard_normal((200, 1, 16)).astype(np.float32)
    ref = OnnxRuntime.from_ir(model)
    want = [np.argmax(ref.run([s])[0]) for s in x]

    def agreement(artifact):
        rt = LiteRTRuntime(artifact.paths["tflite"])
        return np.mean([np.argmax(rt.run([s])[0]) == w for s, w in zip(x, want)])

    assert agreement(mixed) >= 0.95  # the 5-point budget, held on unseen inputs
    assert agreement(plain) < 0.5
    saved = json.loads(mixed.report_path.read_text())
    assert saved["quantization"]["mixed_precision"]["layers"][0]["sqnr_db_alone_int8"] is not None


def test_int16_fallback_gives_the_sensitive_layers_16x8_and_litert_runs_them(tmp_path):
    model, data, stats = _outlier_mlp()
    choice = choose_precisions(model, data, stats, budget=5.0, fallback="int16")
    assert choice["scheme"] == "int8 with 16x8 layers" and choice["within_budget"]
    assert {"fc1", "fc2"} <= set(choice["moved_layers"])
    assert all(r["precision"] in ("int8", "int16") for r in choice["layers"])
    path = tmp_path / "outlier.onnx"
    onnx.save(to_proto(model), path)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.stack([s[0][0] for s in data.samples]))
    art = edgec.compile(path, target="x86_64-int8", out_dir=tmp_path, formats=["tflite"], calibration=calib,
                        accuracy_budget=5.0, fallback_precision="int16")
    quantized = art.report["artifacts"][0]["lowering"]["quantized"]
    assert quantized["int16_ops"] >= 2 and quantized["int64_bias_tensors"] >= 2
    assert art.report["verification"]["artifacts"]["tflite"]["vs_qdq"]["sqnr_db"] > 40
    x = np.random.default_rng(7).standard_normal((200, 1, 16)).astype(np.float32)
    ref, rt = OnnxRuntime.from_ir(model), LiteRTRuntime(art.paths["tflite"])
    agree = np.mean([np.argmax(ref.run([s])[0]) == np.argmax(rt.run([s])[0]) for s in x])
    assert agree >= 0.95


def test_bad_fallback_options_are_one_line_errors(tmp_path):
    with pytest.raises(EdgecError, match="unknown --fallback-precision 'int12'; expected one of float, int16"):
        edgec.compile("zoo:mlp", target="x86_64-int8", out_dir=tmp_path, calibration="random",
                      accuracy_budget=1.0, fallback_precision="int12")
    with pytest.raises(EdgecError, match="add --accuracy-budget"):
        edgec.compile("zoo:mlp", target="x86_64-int8", out_dir=tmp_path, calibration="random",
                      fallback_precision="int16")
    assert not list(tmp_path.iterdir())  # refused before any work
