"""ONNX files -> onnx_ir.Model at edgec's opset."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from edgec.errors import ModelLoadError
from edgec.frontends import onnx_normalize
from edgec.ir import OPSET, from_proto


def _default_opset(proto: onnx.ModelProto) -> int | None:
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return None


# Where the import notes (onnx_normalize's fixes) travel with the model to the report.
NOTES_KEY = "edgec.import_notes"


def _convert(proto: onnx.ModelProto, what: str, keep_inputs=()) -> ir.Model:
    notes = onnx_normalize.normalize(proto, keep_inputs)
    try:
        onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, UnicodeDecodeError) as exc:  # a damaged string field: the latter
        first = str(exc).strip().splitlines()[0]
        raise ModelLoadError(f"{what}: not a valid ONNX model ({first})") from None
    version = _default_opset(proto)
    if version is None:
        raise ModelLoadError(f"{what}: the model imports no default-domain opset")
    if version != OPSET:
        try:
            proto = onnx.version_converter.convert_version(proto, OPSET)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"{what}: cannot convert from opset {version} to opset {OPSET} ({first}); "
                f"re-export the model at opset {OPSET}"
            ) from None
        # The converter keeps the file's IR version; opset OPSET needs a newer one.
        proto.ir_version = max(proto.ir_version, onnx.helper.find_min_ir_version_for(
            [onnx.helper.make_opsetid("", OPSET)]))
        notes.append(f"converted from opset {version} to opset {OPSET}")
    model = from_proto(proto)
    model.meta[NOTES_KEY] = notes
    return model


def load_onnx(path: Path, keep_inputs=()) -> ir.Model:
    """`keep_inputs`: initializer-backed graph inputs the user feeds (else they are constants)."""
    what = str(path)
    try:
        proto = onnx.load(str(path))
    except onnx.checker.ValidationError as exc:  # external data: missing, absolute, or outside the folder
        first = str(exc).strip().splitlines()[0]
        raise ModelLoadError(f"{what}: cannot load its external data: {first} External data files must lie "
                             "in the model's folder, next to it") from None
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise ModelLoadError(
            f"{what}: cannot read as ONNX ({type(exc).__name__}); the file is truncated or not an ONNX model"
        ) from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelLoadError(f"{what}: the file is empty, truncated or not an ONNX model")
    return _convert(proto, what, keep_inputs)


def model_from_bytes(data: bytes, what: str) -> ir.Model:
    try:
        proto = onnx.load_from_string(data)
    except DecodeError:
        raise ModelLoadError(f"{what}: not an ONNX model") from None
    return _convert(proto, what)
