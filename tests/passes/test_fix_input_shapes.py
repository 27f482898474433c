import pytest
from onnx import helper

from edgec.errors import InputShapeError
from edgec.ir import static_shape
from edgec.passes import fix_input_shapes
from helpers import build_model, random_weight


def dynamic_conv_model():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    return build_model(nodes, {"x": ["N", 3, None, None]}, {"y": ["N", 4, None, None]}, {"w": random_weight(4, 3, 3, 3)})


def test_dynamic_input_without_a_shape_names_the_input_and_the_flag():
    with pytest.raises(InputShapeError) as e:
        fix_input_shapes(dynamic_conv_model(), {})
    assert str(e.value) == "input 'x' has dynamic shape [N,3,?,?]; pass --input-shape x=1,3,<dim2>,<dim3>"


@pytest.mark.parametrize("key", ["x", None, "#0"])
def test_given_shape_is_set_and_propagated(key):
    model = fix_input_shapes(dynamic_conv_model(), {key: (2, 3, 5, 7)})
    assert static_shape(model.graph.inputs[0]) == (2, 3, 5, 7)
    assert static_shape(model.graph.outputs[0]) == (2, 4, 5, 7)  # the old symbolic dims are replaced


def test_shape_contradicting_a_fixed_dimension_is_refused():
    with pytest.raises(InputShapeError, match=r"dimension 1 is fixed at 3, --input-shape gives 4"):
        fix_input_shapes(dynamic_conv_model(), {"x": (1, 4, 8, 8)})
    with pytest.raises(InputShapeError, match=r"rank 4 .* rank 2"):
        fix_input_shapes(dynamic_conv_model(), {"x": (1, 3)})


def test_unknown_input_name_lists_the_real_ones():
    with pytest.raises(InputShapeError, match=r"no input named 'image'; its inputs are: x"):
        fix_input_shapes(dynamic_conv_model(), {"image": (1, 3, 8, 8)})


def test_static_model_needs_no_shapes():
    model = build_model([helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 2]}, {"y": [1, 2]})
    assert fix_input_shapes(model, {}) is model
