import numpy as np
from onnx import helper

from edgec.ir import const_array
from edgec.passes.equalize import CrossLayerEqualization
from helpers import assert_pass_preserves_outputs, build_model, random_weight


def _pair(act: str, depthwise: bool):
    w1 = random_weight(6, 3, 3, 3, seed=1)
    w1 *= np.array([100.0, 0.01, 1.0, 5.0, 0.1, 20.0], np.float32).reshape(-1, 1, 1, 1)  # badly spread
    w2 = random_weight(6, 1, 3, 3, seed=2) if depthwise else random_weight(4, 6, 1, 1, seed=2)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1])]
    if act == "Clip":
        nodes.append(helper.make_node("Clip", ["c1", "lo", "hi"], ["a"]))
    else:
        nodes.append(helper.make_node(act, ["c1"], ["a"]))
    nodes.append(helper.make_node("Conv", ["a", "w2"], ["y"], **({"group": 6, "pads": [1, 1, 1, 1]} if depthwise else {})))
    init = {"w1": w1, "b1": random_weight(6, seed=3), "w2": w2,
            "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    return build_model(nodes, {"x": [1, 3, 6, 6]}, ["y"], init)


def _spread(w: np.ndarray) -> float:
    r = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
    return float(r.max() / r.min())


def test_equalization_is_exact_and_evens_out_channel_ranges():
    for depthwise in (False, True):
        for act in ("Relu", "LeakyRelu"):
            model = _pair(act, depthwise)
            before = _spread(const_array(model.graph.initializers["w1"]))
            out = assert_pass_preserves_outputs(model, CrossLayerEqualization(), rtol=1e-4, atol=1e-4)
            conv1 = next(n for n in out.graph if n.op_type == "Conv")
            assert _spread(const_array(conv1.inputs[1])) < before / 10


def test_relu6_pairs_are_refused_with_the_reason():
    model = _pair("Clip", depthwise=True)
    p = CrossLayerEqualization()
    result = p(model)
    assert not result.modified
    assert any("not scale-equivariant" in r.reason for r in p.refusals)
