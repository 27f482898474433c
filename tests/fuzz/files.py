"""Small good and bad input files for the bad-input tests, built in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_onnx(path: Path, weight: np.ndarray | None = None, input_shape=(1, 3, 8, 8)) -> Path:
    """Conv 3->4 + Relu on a 1x3x8x8 input: the smallest model every target compiles."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) if weight is None else weight
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "conv.weight"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [input_shape[0], 4, *input_shape[2:]])],
        [numpy_helper.from_array(w, "conv.weight")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def calibration_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (bad calibration source, what the error must say)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    good = rng.standard_normal((8, 3, 8, 8)).astype(np.float32)
    cases = {}

    def npy(name, array, expect, **kw):
        np.save(folder / name, array, **kw)
        cases[name] = (folder / name, expect)

    inf = good.copy()
    inf[2, 1, 3, 3] = np.inf
    npy("inf.npy", inf, "1 infinite value, the first at index [2, 1, 3, 3]")
    nan = good.copy()
    nan[0, 0, 0, 0] = np.nan
    npy("nan.npy", nan, "1 NaN value")
    npy("zero_d.npy", np.float32(3), "0-d array")
    npy("strings.npy", np.array(["a", "b"]), "strings")
    npy("objects.npy", np.array([{"a": 1}], dtype=object), "Python objects", allow_pickle=True)
    npy("wrong_shape.npy", good[:, :2], "the array for input 'x' has shape [8, 2, 8, 8]")
    npy("empty.npy", good[:0], "empty")
    npy("complex.npy", good.astype(np.complex64), "complex")
    (folder / "random.npz").write_bytes(rng.bytes(500))
    cases["random.npz"] = (folder / "random.npz", "not a .npz archive")
    (folder / "truncated.npy").write_bytes((folder / "inf.npy").read_bytes()[:300])
    cases["truncated.npy"] = (folder / "truncated.npy", "truncated")
    np.savez(folder / "pickled.npz", x=np.array([None, 1], dtype=object))
    cases["pickled.npz"] = (folder / "pickled.npz", "Python objects")
    (folder / "data.csv").write_text("1,2,3\n")
    cases["data.csv"] = (folder / "data.csv", "unknown calibration file type '.csv'")
    images = folder / "images"
    images.mkdir()
    Image.fromarray((rng.random((8, 8, 3)) * 255).astype(np.uint8)).save(images / "a.png")
    (images / "b.png").write_bytes((images / "a.png").read_bytes()[:60])
    cases["truncated image"] = (images, "b.png as calibration data: not a readable image")
    fake = folder / "fake_images"
    fake.mkdir()
    (fake / "c.jpg").write_bytes(b"not a jpeg at all")
    cases["non-image .jpg"] = (fake, "c.jpg as calibration data: not a readable image")
    none = folder / "no_images"
    none.mkdir()
    (none / "notes.txt").write_text("x")
    cases["folder without images"] = (none, "no images")
    return cases


def unwritable_folder() -> str:
    """A folder even root cannot create files in."""
    return "/proc/edgec-out" if os.path.isdir("/proc") else "/dev/null/out"


def tiny_tflite(path: Path, mutate=None) -> Path:
    """A valid one-ADD TFLite model built with the schema's object API; mutate(model) may damage it."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT() for _ in range(4)]
    sub = schema.SubGraphT()
    sub.tensors = []
    for i, name in enumerate(("a", "b", "out")):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, 4], schema.TensorType.FLOAT32, i + 1
        sub.tensors.append(t)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    sub.operators, sub.inputs, sub.outputs = [op], [0, 1], [2]
    model.subgraphs = [sub]
    if mutate is not None:
        mutate(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def _set(obj, **fields):
    for key, value in fields.items():
        setattr(obj, key, value)


TFLITE_DAMAGE = {
    "no subgraphs": (lambda m: _set(m, subgraphs=[]), "it has no subgraphs"),
    "bad opcode index": (lambda m: _set(m.subgraphs[0].operators[0], opcodeIndex=7), "uses opcode 7"),
    "bad op input": (lambda m: _set(m.subgraphs[0].operators[0], inputs=[0, 42]), "input tensor 42"),
    "bad op output": (lambda m: _set(m.subgraphs[0].operators[0], outputs=[-5]), "output tensor -5"),
    "bad subgraph input": (lambda m: _set(m.subgraphs[0], inputs=[9]), "subgraph 0 input is tensor 9"),
    "bad buffer index": (lambda m: _set(m.subgraphs[0].tensors[1], buffer=99), "names buffer 99"),
    "bad shape": (lambda m: _set(m.subgraphs[0].tensors[0], shape=[1, -7]), "has the shape [1, -7]"),
}
