"""ONNX files as they exist in the wild, made into the model they mean, before conversion.

Model-zoo files from the opset 7-9 era break assumptions that newer exporters keep:

- IR version 3 lists every initializer as a graph input too (before IR 4 an initializer
  was only the default value of an input). onnxruntime treats such an input as a constant
  unless the caller feeds it; edgec does the same at compile time, unless the user names
  it (with --input-shape), which keeps it an input without a default.
- Unused initializers, the same input or initializer listed twice, and duplicate node
  names (the converter and the importers key nodes by name).
- value_info that disagrees with what shape inference computes from the inputs (a stale
  shape left by an editing tool): it would poison inference downstream, so it is dropped.

Every fix is reported as a note (the compile report's source.notes), never silently.
The opset itself is upgraded afterwards by onnx's version converter (onnx_file.py): Sum
with N inputs, BatchNormalization's `spatial`, Dropout's `ratio`, Upsample (-> Resize), and
the attribute forms of Pad/Reshape all convert.
"""

from __future__ import annotations

import collections
from typing import Iterable

import onnx

from edgec.onnx_walk import all_nodes


def normalize(proto: onnx.ModelProto, keep_inputs: Iterable[str] = ()) -> list[str]:
    """Fix `proto` in place as described above; returns one note per kind of fix made."""
    graph = proto.graph
    keep_inputs = set(keep_inputs)
    notes = []
    notes += _dedupe(graph)
    notes += _initializer_inputs(graph, keep_inputs)
    if proto.ir_version < 4:
        # Initializers need not be inputs from IR 4 on; the version converter and checker
        # read the model by its IR version's rules.
        proto.ir_version = 4
    notes += _unused_initializers(graph)
    notes += _unique_node_names(graph)
    notes += _stale_value_info(proto)
    return notes


def _filter(field, keep) -> int:
    """Keep the items of a repeated proto field for which keep(item); returns how many went."""
    kept = []
    for item in field:
        if keep(item):
            copy = type(item)()
            copy.CopyFrom(item)
            kept.append(copy)
    removed = len(field) - len(kept)
    if removed:
        del field[:]
        field.extend(kept)
    return removed


def _first_of_each_name(seen: set[str]):
    def keep(item) -> bool:
        if item.name in seen:
            return False
        seen.add(item.name)
        return True

    return keep


def _dedupe(graph: onnx.GraphProto) -> list[str]:
    notes = []
    for field, what in ((graph.input, "graph input"), (graph.initializer, "initializer")):
        dropped = _filter(field, _first_of_each_name(set()))
        if dropped:
            notes.append(f"{dropped} duplicate {what} entr{'y' if dropped == 1 else 'ies'} dropped (the first is kept)")
    return notes


def _initializer_inputs(graph: onnx.GraphProto, keep_inputs: set[str]) -> list[str]:
    initializers = {t.name for t in graph.initializer}
    backed = [i.name for i in graph.input if i.name in initializers]
    fed = [n for n in backed if n in keep_inputs]
    constant = [n for n in backed if n not in keep_inputs]
    _filter(graph.input, lambda i: i.name not in initializers or i.name in keep_inputs)
    _filter(graph.initializer, lambda t: t.name not in fed)  # the user feeds these: no defaults
    notes = []
    if constant:
        notes.append(f"{len(constant)} initializer(s) also listed as graph inputs (IR version 3 style, e.g. "
                     f"'{constant[0]}') are compiled as constants, as onnxruntime treats them when not fed; "
                     "name one with --input-shape to keep it an input")
    if fed:
        notes.append(f"initializer-backed input(s) {', '.join(repr(n) for n in fed)} kept as inputs "
                     "(named with --input-shape): their default values are not used")
    return notes




def _unused_initializers(graph: onnx.GraphProto) -> list[str]:
    read: set[str] = {o.name for o in graph.output}
    read.update(name for node in all_nodes(graph) for name in node.input)
    unused = [t.name for t in graph.initializer if t.name not in read]
    if not unused:
        return []
    _filter(graph.initializer, lambda t: t.name in read)
    return [f"{len(unused)} unused initializer(s) dropped (e.g. '{unused[0]}')"]


def _unique_node_names(graph: onnx.GraphProto) -> list[str]:
    counts = collections.Counter(n.name for n in graph.node if n.name)
    duplicated = {name for name, c in counts.items() if c > 1}
    if not duplicated:
        return []
    taken = set(counts)
    seen: set[str] = set()
    for node in graph.node:
        if node.name in duplicated:
            if node.name in seen:
                i = 1
                while f"{node.name}_{i}" in taken:
                    i += 1
                node.name = f"{node.name}_{i}"
                taken.add(node.name)
            else:
                seen.add(node.name)
    return [f"duplicate node names made unique ({len(duplicated)} name(s), e.g. '{sorted(duplicated)[0]}')"]


def _type_key(value: onnx.ValueInfoProto):
    t = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        return None
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim) if t.HasField("shape") else None
    return t.elem_type, dims


def _stale_value_info(proto: onnx.ModelProto) -> list[str]:
    """Drop value_info entries that shape inference (from the inputs alone) contradicts."""
    graph = proto.graph
    if not graph.value_info:
        return []
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    del probe.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(probe).graph.value_info
    except Exception:  # noqa: BLE001 - inference is advice here: keep the file's own value_info
        return []
    truth = {v.name: _type_key(v) for v in inferred}
    stale = []
    for v in graph.value_info:
        known, stated = truth.get(v.name), _type_key(v)
        if known is None or stated is None or known[0] == 0 or known[1] is None:
            continue
        elem_differs = stated[0] not in (0, known[0])
        dims_differ = stated[1] is not None and (
            len(stated[1]) != len(known[1])
            or any(a is not None and b is not None and a != b for a, b in zip(stated[1], known[1])))
        if elem_differs or dims_differ:
            stale.append(v.name)
    if not stale:
        return []
    _filter(graph.value_info, lambda v: v.name not in stale)
    return [f"{len(stale)} value_info entr{'y' if len(stale) == 1 else 'ies'} that shape inference contradicts "
            f"dropped (e.g. '{stale[0]}')"]
