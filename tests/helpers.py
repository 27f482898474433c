"""Shared test helpers: build small ONNX graphs, and check that a pass keeps a model's outputs.

Every pass test goes through `assert_pass_preserves_outputs`: it runs the model in
onnxruntime before and after the pass on the same inputs and compares the outputs, so a pass
test asserts numerics, not only structure.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Mapping, Sequence

import numpy as np
import onnx
import onnx_ir as ir
from onnx import TensorProto, helper, numpy_helper

from edgec.ir import OPSET, clone, from_proto, sample_inputs, to_proto
from edgec.runtimes.onnxrt import OnnxRuntime

PassLike = ir.passes.PassBase | Callable[[ir.Model], "ir.Model | ir.passes.PassResult"]


def build_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Mapping[str, Sequence[int | str | None]],
    outputs: Sequence[str] | Mapping[str, Sequence[int | str | None] | None],
    initializers: Mapping[str, np.ndarray] | None = None,
    opset: int = OPSET,
) -> ir.Model:
    """An ir.Model from onnx.helper nodes; float32 inputs and outputs, shapes optional on outputs."""
    if not isinstance(outputs, Mapping):
        outputs = {name: None for name in outputs}
    graph = helper.make_graph(
        list(nodes),
        "test",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None if s is None else list(s))
         for n, s in outputs.items()],
        [numpy_helper.from_array(np.asarray(a), name) for name, a in (initializers or {}).items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return from_proto(proto)


def random_weight(*shape: int, seed: int = 0, positive: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    array = rng.standard_normal(shape).astype(np.float32)
    return (np.abs(array) + 0.5).astype(np.float32) if positive else array


def op_counts(model: ir.Model) -> Counter:
    return Counter(node.op_type for node in model.graph)


def run_model(model: ir.Model, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    # No onnxruntime graph optimizations: the reference must compute what the graph says,
    # not onnxruntime's own BatchNorm/Identity fusions of it.
    return OnnxRuntime.from_ir(model, optimize=False).run(list(inputs))


def _apply(pass_or_callable: PassLike | str, model: ir.Model) -> ir.Model:
    if isinstance(pass_or_callable, str):
        from edgec.passes import get_pass

        pass_or_callable = get_pass(pass_or_callable)
    result = pass_or_callable(model)
    return result.model if isinstance(result, ir.passes.PassResult) else result


def _passes_checker(model: ir.Model) -> bool:
    try:
        onnx.checker.check_model(to_proto(model))
    except onnx.checker.ValidationError:
        return False
    return True


def assert_pass_preserves_outputs(
    model: ir.Model,
    pass_or_callable: PassLike | str,
    inputs: Sequence[np.ndarray] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> ir.Model:
    """Run the pass on a clone of `model`, assert onnxruntime outputs match, return the result.

    Also asserts that the transformed model keeps the graph output names (the model's public
    signature) and, when the original passes the ONNX checker, that the result does too.
    """
    original = clone(model)
    was_valid = _passes_checker(original)
    inputs = list(inputs) if inputs is not None else sample_inputs(original, seed=0)
    expected = run_model(original, inputs)

    transformed = _apply(pass_or_callable, clone(model))
    if was_valid:
        onnx.checker.check_model(to_proto(transformed))
    assert [v.name for v in transformed.graph.outputs] == [v.name for v in original.graph.outputs], \
        "graph output names changed"
    actual = run_model(transformed, inputs)

    assert len(actual) == len(expected)
    for name, a, e in zip([v.name for v in original.graph.outputs], actual, expected):
        assert a.shape == e.shape, f"output '{name}': shape {a.shape} != {e.shape}"
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"output '{name}'")
    return transformed
