"""The shared before/after helper must catch a pass that changes what the model computes."""

import onnx_ir as ir
import pytest
from onnx import helper

from helpers import assert_pass_preserves_outputs, build_model


def relu_model():
    return build_model([helper.make_node("Relu", ["x"], ["y"])], {"x": [2, 3]}, {"y": [2, 3]})


def test_a_pass_that_changes_numerics_fails():
    def relu_to_abs(model: ir.Model) -> ir.Model:
        model.graph.node(0).op_type = "Abs"
        return model

    with pytest.raises(AssertionError, match="output 'y'"):
        assert_pass_preserves_outputs(relu_model(), relu_to_abs)


def test_a_pass_that_renames_an_output_fails():
    def rename(model: ir.Model) -> ir.Model:
        model.graph.outputs[0].name = "z"
        return model

    with pytest.raises(AssertionError, match="graph output names changed"):
        assert_pass_preserves_outputs(relu_model(), rename)


def test_the_pass_runs_on_a_clone_and_the_original_is_left_untouched():
    def rename_node(model: ir.Model) -> ir.Model:
        model.graph.node(0).name = "renamed"
        return model

    model = relu_model()
    out = assert_pass_preserves_outputs(model, rename_node)
    assert out.graph.node(0).name == "renamed"
    assert model.graph.node(0).name != "renamed"
