"""The signature sidecar of a TVM artifact: `<library>.json` beside `<library>`.

A Relax VM library knows its parameters' names but not their shapes or dtypes, and an
arm64 library cannot even be loaded on the x86 build machine. The lowering therefore writes
the signature (ONNX input/output names, shapes, dtypes) and the target it was built for to
a small JSON file next to the .so, e.g. `model.arm64-fp32.so.json`. Anything can read it
without TVM: the TVM runtime, a remote runner generating inputs, the report. Copy both
files together; the .so itself is self-contained (weights embedded).

Format (version 1):
    {"format": "edgec-tvm-signature", "version": 1, "function": "main",
     "target": "arm64-fp32", "arch": "arm64", "tvm_target": {...},
     "inputs":  [{"name": "x", "shape": [1, 3, 224, 224], "dtype": "float32"}, ...],
     "outputs": [{"name": "logits", "shape": [1, 1000], "dtype": "float32"}, ...]}
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import ModelLoadError
from edgec.fsutil import atomic_write_text
from edgec.runtimes.base import TensorSpec

FORMAT = "edgec-tvm-signature"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class Signature:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    target: str
    arch: str
    tvm_target: dict[str, Any]
    function: str = "main"


def signature_path(library: str | Path) -> Path:
    library = Path(library)
    return library.with_name(library.name + ".json")


def write_signature(library: str | Path, signature: Signature) -> Path:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "function": signature.function,
        "target": signature.target,
        "arch": signature.arch,
        "tvm_target": signature.tvm_target,
        "inputs": [_spec_to_json(s) for s in signature.inputs],
        "outputs": [_spec_to_json(s) for s in signature.outputs],
    }
    return atomic_write_text(signature_path(library), json.dumps(doc, indent=2) + "\n")


def read_signature(library: str | Path) -> Signature:
    path = signature_path(library)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelLoadError(
            f"{path}: signature file not found; edgec writes it beside the TVM library "
            f"({Path(library).name}) and the runtime needs both: copy them together"
        ) from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc}); rebuild the artifact") from None
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ModelLoadError(
            f"{path}: not an edgec TVM signature version {VERSION} "
            f"(format={doc.get('format')!r}, version={doc.get('version')!r}); rebuild the artifact"
        )
    try:
        return Signature(
            inputs=[_spec_from_json(s) for s in doc["inputs"]],
            outputs=[_spec_from_json(s) for s in doc["outputs"]],
            target=doc["target"],
            arch=doc["arch"],
            tvm_target=doc["tvm_target"],
            function=doc.get("function", "main"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: malformed signature ({exc!r}); rebuild the artifact") from None


def _spec_to_json(spec: TensorSpec) -> dict:
    return {"name": spec.name, "shape": [int(d) for d in spec.shape], "dtype": np.dtype(spec.dtype).name}


def _spec_from_json(doc: dict) -> TensorSpec:
    return TensorSpec(doc["name"], tuple(int(d) for d in doc["shape"]), np.dtype(doc["dtype"]))
