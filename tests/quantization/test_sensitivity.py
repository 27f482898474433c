import numpy as np
from onnx import helper

from edgec.passes.shape_inference import ShapeInference
from edgec.quantization.calibration import collect_statistics, load_calibration
from edgec.quantization.sensitivity import choose_int4_layers, sensitivity
from helpers import build_model, random_weight


def _mlp_with_a_fragile_layer():
    # fc2's rows each hold one huge weight, on an input channel that is always 0 (fc1's channel
    # 0 is dead after ReLU): it adds nothing to the output, but sets each row's int4 scale so
    # coarse that the weights that matter round to zero; at int8 they still resolve.
    w2 = random_weight(32, 32, seed=2) * 0.1
    w2[:, 0] = 6.0
    b1 = np.zeros(32, np.float32)
    b1[0] = -1000.0
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1, name="fc1"),
             helper.make_node("Relu", ["h1"], ["a1"]),
             helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], transB=1, name="fc2"),
             helper.make_node("Relu", ["h2"], ["a2"]),
             helper.make_node("Gemm", ["a2", "w3", "b3"], ["h3"], transB=1, name="fc3"),
             helper.make_node("Relu", ["h3"], ["a3"]),
             helper.make_node("Gemm", ["a3", "w4", "b4"], ["y"], transB=1, name="fc4")]
    init = {"w1": random_weight(32, 16, seed=1) * 0.3, "b1": b1, "w2": w2,
            "b2": np.zeros(32, np.float32), "w3": random_weight(32, 32, seed=3) * 0.2,
            "b3": np.zeros(32, np.float32), "w4": random_weight(10, 32, seed=4) * 0.2,
            "b4": np.zeros(10, np.float32)}
    model = ShapeInference()(build_model(nodes, {"x": [1, 16]}, {"y": [1, 10]}, init)).model
    data = load_calibration(np.random.default_rng(0).standard_normal((48, 16)).astype(np.float32), model)
    return model, data, collect_statistics(model, data)


def test_sensitivity_ranks_the_fragile_layer_first():
    model, data, stats = _mlp_with_a_fragile_layer()
    base, rows = sensitivity(model, data, stats, samples=32)
    assert rows[0].node == "fc2"
    assert rows[0].sqnr_drop_db > rows[1].sqnr_drop_db + 3
    assert {r.node for r in rows} == {"fc1", "fc2", "fc3", "fc4"}


def test_greedy_choice_keeps_ends_int8_and_respects_the_budget():
    model, data, stats = _mlp_with_a_fragile_layer()
    plain = choose_int4_layers(model, data, stats, budget=None)
    assert plain["bits"] == {"fc1": 8, "fc2": 4, "fc3": 4, "fc4": 8}
    # A budget in dB would be for non-classifiers; this one has class scores: top-1 points.
    tight = choose_int4_layers(model, data, stats, budget=0.0)
    assert tight["bits"]["fc1"] == 8 and tight["bits"]["fc4"] == 8
    loose = choose_int4_layers(model, data, stats, budget=100.0)
    assert loose["int4_layers"] == 2
    assert tight["int4_layers"] <= loose["int4_layers"]
