from onnx import helper

from edgec.ir import static_shape
from edgec.passes.shape_inference import ShapeInference
from helpers import assert_pass_preserves_outputs, build_model, random_weight


def test_every_value_gets_a_static_shape_and_dtype():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1),
    ]
    model = build_model(nodes, {"x": [1, 3, 8, 8]}, ["y"], {"w": random_weight(4, 3, 3, 3), "fc": random_weight(10, 4)})
    pass_ = ShapeInference()
    out = assert_pass_preserves_outputs(model, pass_)
    shapes = {n.outputs[0].name: static_shape(n.outputs[0]) for n in out.graph}
    assert shapes == {"c": (1, 4, 4, 4), "r": (1, 4, 4, 4), "p": (1, 4, 1, 1), "f": (1, 4), "y": (1, 10)}
    assert all(n.outputs[0].dtype is not None for n in out.graph)
    assert pass_.details == ["every value has a static shape and dtype"]


def test_values_left_dynamic_are_named_in_details():
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["r"], ["y"])]
    model = build_model(nodes, {"x": ["N", 4]}, ["y"])
    pass_ = ShapeInference()
    pass_(model)
    assert pass_.details == ["3 values without a static shape: x, r, y"]


def test_inconsistent_graph_is_reported_not_raised():
    # [2,3] + [4,5] cannot broadcast: strict inference refuses, the permissive run still shapes the rest.
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["a"], ["y"])]
    model = build_model(nodes, {"a": [2, 3], "b": [4, 5]}, ["s", "y"])
    pass_ = ShapeInference()
    pass_(model)
    assert pass_.details[0].startswith("strict shape inference failed")
    assert static_shape(model.graph.node(1).outputs[0]) == (2, 3)
