import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edgec.errors import InputShapeError, ModelLoadError
from edgec.frontends import load_model
from edgec.frontends.shapes import parse_input_shapes
from edgec.ir import OPSET, to_bytes
from edgec.runtimes.onnxrt import OnnxRuntime


class SmallNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return SmallNet().eval(), torch.randn(1, 3, 8, 8)


def _ort(model, x):
    return OnnxRuntime(to_bytes(model)).run([x])[0]


def test_module_export_matches_torch(net):
    m, x = net
    imp = load_model(m, example_inputs=(x,))
    assert imp.kind == "torch-module" and imp.model.opset_imports[""] == OPSET
    np.testing.assert_allclose(_ort(imp.model, x.numpy()), m(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_module_without_inputs_asks_for_input_shape(net):
    with pytest.raises(InputShapeError, match="--input-shape"):
        load_model(net[0])
    imp = load_model(net[0], input_shapes=[1, 3, 8, 8])
    assert [d for d in imp.model.graph.inputs[0].shape] == [1, 3, 8, 8]


def test_exported_program_file(net, tmp_path):
    m, x = net
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(m, (x,)), str(path))
    imp = load_model(path)
    assert imp.kind == "exported-program" and imp.name == "net"
    np.testing.assert_allclose(_ort(imp.model, x.numpy()), m(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(imp.torch_reference(x).detach().numpy(), m(x).detach().numpy())


def test_torchscript_file_needs_and_uses_shape(net, tmp_path):
    m, x = net
    path = tmp_path / "net.pt"
    torch.jit.save(torch.jit.trace(m, (x,)), str(path))
    with pytest.raises(InputShapeError, match=r"net.pt: TorchScript keeps no input shapes; pass --input-shape"):
        load_model(path)
    imp = load_model(path, input_shapes={None: (1, 3, 8, 8)})
    assert imp.kind == "torchscript" and imp.model.opset_imports[""] == OPSET
    np.testing.assert_allclose(_ort(imp.model, x.numpy()), m(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_pickled_module_refused_unless_trusted(net, tmp_path):
    path = tmp_path / "full.pt"
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), str(path))
    with pytest.raises(ModelLoadError, match=r"full.pt: is a pickled full module.*--trust-pickle"):
        load_model(path, input_shapes=[1, 3, 8, 8])
    imp = load_model(path, input_shapes=[1, 3, 8, 8], allow_pickle=True)
    assert imp.kind == "pickled-module"


def test_state_dict_is_explained(net, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(net[0].state_dict(), str(path))
    with pytest.raises(ModelLoadError, match="holds only weights"):
        load_model(path)


def _old_opset_model_with_generated_weight(opset: int) -> onnx.ModelProto:
    # The weight comes from ConstantOfShape, as some exporters write it.
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [4, 6])
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["w"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5])),
        helper.make_node("MatMul", ["x", "w"], ["y"]),
        helper.make_node("Relu", ["y"], ["z"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 6])], [shape])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [11, 13, 17, 21])
def test_onnx_any_convertible_opset(opset, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_old_opset_model_with_generated_weight(opset), str(path))
    imp = load_model(path)
    assert imp.kind == "onnx" and imp.model.opset_imports[""] == OPSET
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(_ort(imp.model, x), np.maximum(x @ np.full((4, 6), 0.5, np.float32), 0), rtol=1e-6)


def test_truncated_missing_and_unknown_files(tmp_path):
    good = tmp_path / "m.onnx"
    onnx.save(_old_opset_model_with_generated_weight(13), str(good))
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ModelLoadError, match=r"cut.onnx: .*(truncated|not a valid)"):
        load_model(bad)
    with pytest.raises(ModelLoadError, match=r"nope.onnx: no such file"):
        load_model(tmp_path / "nope.onnx")
    (tmp_path / "m.h5").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"unknown model file type '.h5'"):
        load_model(tmp_path / "m.h5")
    (tmp_path / "cut.pt2").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ModelLoadError, match="cut.pt2"):
        load_model(tmp_path / "cut.pt2")


def test_parse_input_shapes():
    assert parse_input_shapes(["1,3,224,224"]) == {None: (1, 3, 224, 224)}
    assert parse_input_shapes(["x=1,3,8,8", "m=1,16"]) == {"x": (1, 3, 8, 8), "m": (1, 16)}
    with pytest.raises(InputShapeError, match="integers"):
        parse_input_shapes(["1,3,a"])
    with pytest.raises(InputShapeError, match="positive"):
        parse_input_shapes(["1,0,3"])
