"""Crafted torch.export archives: nothing in a .pt2 runs code unless the user trusts the file.

Each payload writes a marker file when run. The same archives run their payload under a plain
torch.export.load (checked here too, so these tests cannot pass by crafting harmless files).
"""

import logging

import numpy as np
import pytest
import torch

from edgec.errors import ModelLoadError
from edgec.frontends import load_model
from edgec.frontends.pt2_safety import restricted_loading, safe_expression
from fuzz.crafted import pt2_with_payload, save_exported

PARTS = {
    "sample_inputs": "member data/sample_inputs/model.pt holds pickled objects",
    "pickled_weight": "member data/weights/weight_payload holds pickled objects",
    "opaque_constant": "constant 'evil' (data/constants/opaque_obj_0) is a pickled Python object",
    "shape_expression": "member models/model.json holds the shape expression",
    "node_target": "has a node calling 'torch.ops.load_library', which is not a torch operator",
}


@pytest.fixture(scope="module")
def good_pt2(tmp_path_factory):
    return save_exported(tmp_path_factory.mktemp("pt2") / "tiny.pt2")


@pytest.mark.parametrize("where", sorted(PARTS))
def test_crafted_archive_refused_naming_the_member(good_pt2, tmp_path, where):
    marker = tmp_path / "marker"
    bad = pt2_with_payload(good_pt2, tmp_path / "bad.pt2", marker, where)
    with pytest.raises(ModelLoadError) as info:
        load_model(bad)
    assert PARTS[where] in str(info.value) and "bad.pt2" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("where", ["sample_inputs", "pickled_weight", "opaque_constant", "shape_expression"])
def test_guard_alone_stops_payloads_that_plain_torch_runs(good_pt2, tmp_path, where):
    marker = tmp_path / "marker"
    bad = pt2_with_payload(good_pt2, tmp_path / "bad.pt2", marker, where)
    logging.disable(logging.CRITICAL)
    try:
        with pytest.raises(Exception):
            with restricted_loading():
                torch.export.load(str(bad))
        assert not marker.exists()
        try:  # the payload is real: torch as shipped runs it
            torch.export.load(str(bad))
        except Exception:
            pass
    finally:
        logging.disable(logging.NOTSET)
    assert marker.exists()


def test_trust_pickle_is_the_only_way_in(good_pt2, tmp_path):
    marker = tmp_path / "marker"
    bad = pt2_with_payload(good_pt2, tmp_path / "bad.pt2", marker, "sample_inputs")
    with pytest.raises(ModelLoadError, match="--trust-pickle"):
        load_model(bad)
    assert not marker.exists()
    try:
        load_model(bad, allow_pickle=True)
    except ModelLoadError:
        pass
    assert marker.exists()


def test_saved_program_still_loads_and_matches_torch(good_pt2):
    imp = load_model(good_pt2)
    program = torch.export.load(str(good_pt2))
    x = torch.randn(1, 3, 8, 8)
    np.testing.assert_allclose(imp.torch_reference(x).detach().numpy(), program.module()(x).detach().numpy())
    assert imp.example_inputs is not None and imp.example_inputs[0].shape == (1, 3, 8, 8)


def test_guard_restores_torch_afterwards(good_pt2):
    real = torch.load
    with restricted_loading():
        assert torch.load is not real
    assert torch.load is real


@pytest.mark.parametrize("expr,ok", [
    ("s0", True), ("2*s0 + 1", True), ("Max(1, s0)", True), ("FloorDiv(s0, 2)", True), ("s0 >= 3.5", True),
    ("u0*s1 - 4", True), ("exec('x')", False), ("s0.__class__", False), ("chr(95)", False),
    ("open", False), ("s0.real", False), ("__import__", False), ("eval(s0)", False), ("[s0]", False),
    ("Mul(Integer(2), Symbol('s77', positive=True, integer=True))", True), ("Float('1.5', precision=53)", True),
    ("Max('exec(1)')", False), ("Symbol('s0').__class__", False), ("Symbol('a b')", False), ("'s0", False),
])
def test_shape_expression_grammar(expr, ok):
    assert safe_expression(expr) is ok


def test_dynamic_shape_program_loads(tmp_path):
    class Pair(torch.nn.Module):
        def forward(self, x, y):
            return torch.cat([x, y]).sum(0) * x.shape[0]

    program = torch.export.export(Pair(), (torch.randn(4, 3), torch.randn(5, 3)),
                                  dynamic_shapes=({0: torch.export.Dim("b", min=2, max=64)}, {0: torch.export.Dim("c")}))
    torch.export.save(program, str(tmp_path / "dyn.pt2"))
    from edgec.frontends.torch_file import load_exported_program

    loaded = load_exported_program(tmp_path / "dyn.pt2")
    x, y = torch.randn(6, 3), torch.randn(2, 3)
    np.testing.assert_allclose(loaded.module()(x, y).numpy(), program.module()(x, y).numpy())
