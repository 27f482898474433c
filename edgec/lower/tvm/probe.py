"""A probe build of an int8 TVM lowering: the same QDQ graph, with every quantized value also a
graph output, so the layer-by-layer faithfulness check (edgec.faithfulness) can read what the
integer kernels computed for each layer.

A Relax VM library keeps no intermediate tensors, so the artifact itself cannot be asked for
them. The probe is lowered by the same stages (integer rewrite, fusion, code generation) from
the same graph; only the extra outputs differ, and a value that is also an output is computed
by the same kernel. It costs a second TVM build, so verification builds it only when the
end-to-end check is inconclusive (a deep net whose rounding ties compound through depth).
"""

from __future__ import annotations

from pathlib import Path

import onnx_ir as ir

from edgec.ir import clone


def probe_model(qdq: ir.Model) -> tuple[ir.Model, dict[str, list]]:
    """A copy of `qdq` whose QuantizeLinear outputs are graph outputs too, and the tensor map
    the faithfulness check takes: {value name: [output index, []]} (ONNX layout, no permutation)."""
    probe = clone(qdq)
    tensor_map = {}
    present = {v.name for v in probe.graph.outputs}
    for node in probe.graph:
        if node.op_type != "QuantizeLinear":
            continue
        produced = node.outputs[0]
        if produced.name in present or not produced.uses():
            continue
        tensor_map[produced.name.removesuffix("/q")] = [len(probe.graph.outputs), []]
        probe.graph.outputs.append(produced)
        present.add(produced.name)
    return probe, tensor_map


def build_probe(qdq: ir.Model, target, folder: Path) -> tuple[Path, dict[str, list]]:
    """Lower the probe of `qdq` for `target` into `folder`; (library path, tensor map)."""
    from edgec.lower.tvm.build import lower_tvm

    probe, tensor_map = probe_model(qdq)
    path = Path(folder) / "probe.so"
    lower_tvm(probe, target, path)
    return path, tensor_map
