import numpy as np
from onnx import helper

from edgec.passes.remove_identity import RemoveIdentity
from helpers import assert_pass_preserves_outputs, build_model, op_counts, random_weight


def test_identity_and_dropout_inside_the_graph_are_removed():
    model = build_model(
        [helper.make_node("Identity", ["x"], ["i"]),
         helper.make_node("Relu", ["i"], ["r"]),
         helper.make_node("Dropout", ["r", "ratio"], ["d"]),
         helper.make_node("Mul", ["d", "d"], ["y"])],
        {"x": [2, 3]}, {"y": [2, 3]}, {"ratio": np.array(0.5, np.float32)},
    )
    pass_ = RemoveIdentity()
    out = assert_pass_preserves_outputs(model, pass_)
    assert op_counts(out) == {"Relu": 1, "Mul": 1}
    assert pass_.details == ["removed 1 Identity", "removed 1 Dropout"]


def test_identity_feeding_a_graph_output_keeps_the_output_name():
    model = build_model(
        [helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Identity", ["h"], ["logits"])],
        {"x": [2, 4]}, {"logits": [2, 3]}, {"w": random_weight(4, 3)},
    )
    out = assert_pass_preserves_outputs(model, RemoveIdentity())
    assert op_counts(out) == {"MatMul": 1}
    assert out.graph.outputs[0].name == "logits"
    assert out.graph.node(0).outputs[0] is out.graph.outputs[0]


def test_dropout_with_mask_output_feeding_graph_output():
    model = build_model(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("Dropout", ["r"], ["y", "mask"])],
        {"x": [3, 3]}, {"y": [3, 3]},
    )
    out = assert_pass_preserves_outputs(model, RemoveIdentity())
    assert op_counts(out) == {"Relu": 1}
    assert out.graph.outputs[0].name == "y"


def test_identity_between_graph_input_and_output_is_kept():
    # Removing it would rename either the input or the output; both are the signature.
    model = build_model([helper.make_node("Identity", ["x"], ["y"], name="copy")], {"x": [2]}, {"y": [2]})
    pass_ = RemoveIdentity()
    out = assert_pass_preserves_outputs(model, pass_)
    assert op_counts(out) == {"Identity": 1}
    assert [(r.node, r.op_type) for r in pass_.refusals] == [("copy", "Identity")]


def test_dropout_between_graph_input_and_output_becomes_identity():
    model = build_model([helper.make_node("Dropout", ["x"], ["y"])], {"x": [2]}, {"y": [2]})
    out = assert_pass_preserves_outputs(model, RemoveIdentity())
    assert op_counts(out) == {"Identity": 1}


def test_identity_of_a_value_that_is_itself_an_output_is_kept():
    model = build_model(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["b"])],
        {"x": [2]}, {"a": [2], "b": [2]},
    )
    out = assert_pass_preserves_outputs(model, RemoveIdentity())
    assert [v.name for v in out.graph.outputs] == ["a", "b"]
    assert op_counts(out) == {"Relu": 1, "Identity": 1}


def test_dropout_in_training_mode_is_kept():
    model = build_model(
        [helper.make_node("Relu", ["x"], ["r"]),
         helper.make_node("Dropout", ["r", "ratio", "training"], ["y"], name="drop")],
        {"x": [2, 2]}, {"y": [2, 2]}, {"ratio": np.array(0.0, np.float32), "training": np.array(True)},
    )
    pass_ = RemoveIdentity()
    out = assert_pass_preserves_outputs(model, pass_)  # ratio 0: deterministic even in training
    assert op_counts(out) == {"Relu": 1, "Dropout": 1}
    assert "training_mode" in pass_.refusals[0].reason


def test_identity_of_a_weight_keeps_the_weight_name():
    model = build_model(
        [helper.make_node("Identity", ["w"], ["w_copy"]), helper.make_node("MatMul", ["x", "w_copy"], ["y"])],
        {"x": [2, 4]}, {"y": [2, 3]}, {"w": random_weight(4, 3)},
    )
    out = assert_pass_preserves_outputs(model, RemoveIdentity())
    assert op_counts(out) == {"MatMul": 1}
    assert out.graph.node(0).inputs[1].name == "w"
