import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgec.passes.constant_folding import ConstantFolding
from helpers import assert_pass_preserves_outputs, build_model, op_counts, random_weight


def int64(*values):
    return np.array(values, dtype=np.int64)


def test_weights_generated_by_constant_of_shape_expand_reshape_cast_are_folded():
    # w = Reshape(Cast(ConstantOfShape([216], int32 1)), [8,3,3,3]) * scale; b = Expand(bias0, [8]).
    # onnxscript's folder keeps every ConstantOfShape by default; edgec must fold them.
    ones = numpy_helper.from_array(np.array([1], np.int32))
    nodes = [
        helper.make_node("ConstantOfShape", ["n"], ["ones"], value=ones),
        helper.make_node("Cast", ["ones"], ["ones_f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["ones_f", "w_shape"], ["w_base"]),
        helper.make_node("Mul", ["w_base", "scale"], ["w"]),
        helper.make_node("Expand", ["bias0", "b_shape"], ["b"]),
        helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
    ]
    model = build_model(
        nodes, {"x": [1, 3, 6, 6]}, {"y": [1, 8, 6, 6]},
        {"n": int64(216), "w_shape": int64(8, 3, 3, 3), "scale": random_weight(8, 1, 1, 1),
         "bias0": random_weight(1), "b_shape": int64(8)},
    )
    pass_ = ConstantFolding()
    out = assert_pass_preserves_outputs(model, pass_)
    assert op_counts(out) == {"Conv": 1}
    conv = out.graph.node(0)
    assert conv.inputs[1].is_initializer() and conv.inputs[1].const_value.shape == (8, 3, 3, 3)
    assert conv.inputs[2].is_initializer() and conv.inputs[2].const_value.shape == (8,)
    # the generator inputs are gone, not left behind as dead initializers
    assert set(out.graph.initializers) == {conv.inputs[1].name, conv.inputs[2].name}
    assert pass_.details[0] == "6 -> 1 nodes"


def test_shape_arithmetic_on_a_static_input_folds():
    # Flatten written the way exporters write it: Reshape(x, Concat(Shape(x)[0:1], [-1]))
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "zero", "one"], ["batch"]),
        helper.make_node("Concat", ["batch", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    model = build_model(nodes, {"x": [2, 3, 4]}, {"y": [2, 12]},
                        {"zero": int64(0), "one": int64(1), "minus_one": int64(-1)})
    out = assert_pass_preserves_outputs(model, ConstantFolding())
    assert op_counts(out) == {"Reshape": 1}
    assert out.graph.node(0).inputs[1].const_value.numpy().tolist() == [2, -1]


def test_constant_nodes_become_initializers_and_dead_code_goes():
    nodes = [
        helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(random_weight(3))),
        helper.make_node("Add", ["x", "k"], ["y"]),
        helper.make_node("Relu", ["x"], ["unused"]),  # reaches no output
    ]
    model = build_model(nodes, {"x": [2, 3]}, {"y": [2, 3]}, {"stale": random_weight(5)})
    out = assert_pass_preserves_outputs(model, ConstantFolding())
    assert op_counts(out) == {"Add": 1}
    assert set(out.graph.initializers) == {"k"}


def test_quantization_ops_are_not_folded():
    # DequantizeLinear(int8 weight) is the quantized weight itself; folding it would undo it.
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "w_scale"], ["w"], axis=0),
        helper.make_node("Conv", ["x", "w"], ["y"]),
    ]
    model = build_model(
        nodes, {"x": [1, 3, 4, 4]}, {"y": [1, 4, 4, 4]},
        {"wq": np.arange(-6, 6, dtype=np.int8).reshape(4, 3, 1, 1), "w_scale": random_weight(4, positive=True)},
    )
    out = assert_pass_preserves_outputs(model, ConstantFolding())
    assert op_counts(out) == {"DequantizeLinear": 1, "Conv": 1}
