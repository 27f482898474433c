"""The convention every edgec pass follows, on top of onnx_ir's pass framework.

A pass is an `onnx_ir.passes.InPlacePass` with a registry `name`. Besides the model and the
`modified` flag, it leaves two things on the instance for the compile report:

- `details`: short human-readable lines ("folded 17 BatchNormalization into Conv").
- `refusals`: every rewrite the pass declined, with the node and the reason, so that a user
  asking "why is this BatchNorm still here?" (a future `--explain`) gets an answer instead of
  a silent no-op.

Both are reset at the start of each run, so one instance can be reused.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar, Iterable

import numpy as np
import onnx_ir as ir

from edgec.ir import node_label


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A rewrite a pass declined: which node, what op, and why."""

    node: str
    op_type: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


class EdgecPass(ir.passes.InPlacePass):
    """Base of edgec's passes: subclasses set `name` and implement `apply`."""

    name: ClassVar[str] = ""
    # Ops this pass removes from the graph, and when: the supported-ops table lists them as
    # lowered "via" the pass for targets whose recipe runs it.
    removes: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.details: list[str] = []
        self.refusals: list[Refusal] = []

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.details = []
        self.refusals = []
        modified = self.apply(model)
        return ir.passes.PassResult(model, bool(modified))

    @abc.abstractmethod
    def apply(self, model: ir.Model) -> bool:
        """Rewrite `model` in place; return whether anything changed."""

    def note(self, text: str) -> None:
        self.details.append(text)

    def refuse(self, node: ir.Node, reason: str) -> None:
        self.refusals.append(Refusal(node_label(node), node.op_type, reason))


class ValueNames:
    """Hands out value names not yet used in a graph (new initializers, new node outputs).

    ONNX needs every value name in a graph to be unique; passes that add values ask here
    instead of guessing a suffix.
    """

    def __init__(self, graph: ir.Graph) -> None:
        self._taken = {v.name for v in graph.inputs if v.name}
        self._taken.update(name for name in graph.initializers if name)
        self._taken.update(out.name for node in graph for out in node.outputs if out.name)

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self._taken:
            name = f"{base}_{i}"
            i += 1
        self._taken.add(name)
        return name


def add_initializer(graph: ir.Graph, names: ValueNames, base: str, array: np.ndarray) -> ir.Value:
    """Register `array` as a new initializer with a fresh name derived from `base`."""
    name = names.fresh(base)
    value = ir.Value(
        name=name,
        shape=ir.Shape(array.shape),
        type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
        const_value=ir.tensor(array, name=name),
    )
    graph.register_initializer(value)
    return value


def sole_consumer(value: ir.Value) -> ir.Node | None:
    """The one node reading `value`, when exactly one does and it is not a graph output:
    the condition under which a rewrite may fold `value` away into its reader."""
    if value.is_graph_output():
        return None
    users = {id(user): user for user, _ in value.uses()}
    return next(iter(users.values())) if len(users) == 1 else None


def drop_unused_initializers(graph: ir.Graph, candidates: Iterable[ir.Value | None]) -> int:
    """Remove those of `candidates` that are initializers nothing reads any more."""
    dropped = 0
    for value in candidates:
        if value is None or not value.is_initializer() or value.uses():
            continue
        if value.is_graph_output() or value.is_graph_input():
            continue
        if value.name in graph.initializers and graph.initializers[value.name] is value:
            graph.initializers.pop(value.name)
            dropped += 1
    return dropped


def take_place_of(old: ir.Value, new: ir.Value, keep_name: bool = True) -> None:
    """Make `new` stand where `old` stood: same readers, same graph-output slot, same shape.

    Call it once `old`'s producer is about to be removed. With `keep_name`, `new` also takes
    `old`'s name; it must when `old` is a graph output, because output names are the model's
    public signature.
    """
    name, shape, type_ = old.name, old.shape, old.type
    old.replace_all_uses_with(new, replace_graph_outputs=True)
    if keep_name or new.is_graph_output():
        old.name = None  # free the name before `new` takes it
        new.name = name
    if shape is not None:
        new.shape = shape
    if type_ is not None and new.type is None:
        new.type = type_
