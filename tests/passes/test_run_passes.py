"""The registry and `run_passes` in passes/__init__.py."""

import numpy as np
import pytest
from onnx import helper

from edgec.errors import EdgecError
from edgec.passes import PASSES, get_pass, run_passes
from helpers import assert_pass_preserves_outputs, build_model, op_counts, random_weight

CANONICAL = ["constant_folding", "remove_identity", "fold_batchnorm", "constant_folding", "shape_inference"]


def conv_bn_block():
    """Conv -> Identity -> BN -> Relu -> Dropout -> output, BN params behind Identity too."""
    inits = {"w": random_weight(4, 3, 3, 3), "gamma": random_weight(4, seed=1), "beta": random_weight(4, seed=2),
             "mean": random_weight(4, seed=3), "var": random_weight(4, seed=4, positive=True)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Identity", ["c"], ["c2"]),
        helper.make_node("Identity", ["gamma"], ["gamma2"]),
        helper.make_node("BatchNormalization", ["c2", "gamma2", "beta", "mean", "var"], ["b"]),
        helper.make_node("Relu", ["b"], ["r"]),
        helper.make_node("Dropout", ["r"], ["y"]),
    ]
    return build_model(nodes, {"x": [1, 3, 8, 8]}, {"y": [1, 4, 8, 8]}, inits)


def test_canonical_recipe_leaves_conv_relu_and_keeps_numerics():
    records = []
    out = assert_pass_preserves_outputs(conv_bn_block(), lambda m: records.extend(run_passes(m, CANONICAL)[1]) or m)
    assert op_counts(out) == {"Conv": 1, "Relu": 1}
    assert [r["name"] for r in records] == CANONICAL
    assert set(records[0]) == {"name", "modified", "seconds", "nodes_before", "nodes_after", "details", "refusals"}
    by_name = {r["name"]: r for r in records}
    # onnxscript's folder already forwards Identity/Dropout, leaving remove_identity nothing
    assert (records[0]["nodes_before"], records[0]["nodes_after"]) == (6, 3)
    assert by_name["remove_identity"]["modified"] is False
    assert by_name["fold_batchnorm"]["details"] == "folded 1 BatchNormalization into Conv"
    assert by_name["fold_batchnorm"]["modified"] is True
    assert records[3]["modified"] is False  # the second constant_folding finds nothing left to do
    assert all(r["seconds"] >= 0 for r in records)


def test_progress_reports_each_pass():
    messages = []
    run_passes(conv_bn_block(), ["remove_identity", "fold_batchnorm"], on_progress=messages.append)
    assert len(messages) == 2
    assert messages[0].startswith("pass 1/2 remove_identity: removed 2 Identity")


def test_refusals_are_recorded():
    nodes = [helper.make_node("Identity", ["x"], ["y"], name="passthrough")]
    model = build_model(nodes, {"x": [2]}, {"y": [2]})
    _, records = run_passes(model, ["remove_identity"])
    assert records[0]["refusals"] == [{"node": "passthrough", "op_type": "Identity",
                                       "reason": "graph output 'y' must stay distinct from 'x'"}]


def test_unknown_pass_lists_known_ones_before_anything_runs():
    model = conv_bn_block()
    with pytest.raises(EdgecError) as e:
        run_passes(model, ["remove_identity", "fold_batchnrom"])
    assert "unknown pass 'fold_batchnrom'" in str(e.value)
    for name in PASSES:
        assert name in str(e.value)
    assert op_counts(model)["Identity"] == 2  # the valid first pass did not run


def test_get_pass_options():
    assert get_pass("constant_folding", size_limit=10).size_limit == 10
    with pytest.raises(EdgecError, match="pass 'fold_batchnorm' rejected options"):
        get_pass("fold_batchnorm", aggressive=True)


def test_every_registered_pass_preserves_outputs_of_the_block():
    for name in PASSES:
        assert_pass_preserves_outputs(conv_bn_block(), name, inputs=[np.ones((1, 3, 8, 8), np.float32)])


def test_pass_instances_run_alongside_names():
    # Passes needing options (a quantizer with calibration data) are given as instances;
    # a plain onnx_ir pass gets a record too, with empty details.
    from onnx_ir.passes.common import TopologicalSortPass

    _, records = run_passes(conv_bn_block(), [get_pass("remove_identity"), TopologicalSortPass(), "fold_batchnorm"])
    assert [r["name"] for r in records] == ["remove_identity", "TopologicalSortPass", "fold_batchnorm"]
    assert records[1]["details"] == "" and records[1]["refusals"] == []
