"""What is inside an artifact: ops, tensors, sizes. Backs `edgec inspect`."""

from __future__ import annotations

import json
from pathlib import Path

from edgec.errors import EdgecError, ModelLoadError


def _tflite_enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def inspect_tflite(path: Path) -> dict:
    try:
        return _inspect_tflite(path)
    except ModelLoadError:
        raise
    except (TypeError, IndexError, KeyError, AttributeError, ValueError, OverflowError) as exc:
        # A field the structure check does not cover (a damaged table, a string that is not UTF-8).
        raise ModelLoadError(f"{path}: malformed TFLite file: a damaged table ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from None


def _inspect_tflite(path: Path) -> dict:
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelLoadError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier); is it truncated?")
    try:
        model = schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception:
        raise ModelLoadError(f"{path}: malformed TFLite file: the flatbuffer is corrupt or truncated") from None
    problem = tflite_structure_problem(model)
    if problem:
        raise ModelLoadError(f"{path}: malformed TFLite file: {problem}")
    op_names = _tflite_enum_names(schema.BuiltinOperator)
    type_names = _tflite_enum_names(schema.TensorType)
    codes = []
    for oc in model.operatorCodes:
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        codes.append(op_names.get(code, f"CUSTOM:{(oc.customCode or b'').decode()}" if code == 32 else str(code)))
    sub = model.subgraphs[0]
    ops: dict[str, int] = {}
    for op in sub.operators:
        ops[codes[op.opcodeIndex]] = ops.get(codes[op.opcodeIndex], 0) + 1

    def tensor_info(i: int) -> dict:
        t = sub.tensors[i]
        info = {"name": (t.name or b"").decode() if isinstance(t.name, bytes) else t.name,
                "shape": [int(d) for d in (t.shape if t.shape is not None else [])],
                "dtype": type_names.get(t.type, str(t.type)).lower()}
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale):
            info["quantization"] = {"scales": len(q.scale), "axis": q.quantizedDimension}
        return info

    weight_bytes = sum(len(b.data) for b in model.buffers if b.data is not None)
    tensor_types: dict[str, int] = {}
    for t in sub.tensors:
        name = type_names.get(t.type, str(t.type)).lower()
        tensor_types[name] = tensor_types.get(name, 0) + 1
    return {
        "path": str(path),
        "format": "tflite",
        "size_bytes": len(data),
        "weight_bytes": weight_bytes,
        "subgraphs": len(model.subgraphs),
        "operators": len(sub.operators),
        "ops": dict(sorted(ops.items())),
        "tensors": len(sub.tensors),
        "tensor_types": tensor_types,
        "inputs": [tensor_info(i) for i in sub.inputs],
        "outputs": [tensor_info(i) for i in sub.outputs],
    }


def tflite_structure_problem(model) -> str | None:
    """The first index in the flatbuffer that points nowhere (a crafted or damaged file), or None."""
    if not model.subgraphs:
        return "it has no subgraphs"
    n_codes, n_buffers = len(model.operatorCodes or []), len(model.buffers or [])
    for s, sub in enumerate(model.subgraphs):
        n_tensors = len(sub.tensors or [])
        for t, tensor in enumerate(sub.tensors or []):
            if not 0 <= tensor.buffer < max(n_buffers, 1):
                return f"tensor {t} of subgraph {s} names buffer {tensor.buffer}; the file has {n_buffers}"
            if tensor.shape is not None and any(int(d) < -1 for d in tensor.shape):
                return f"tensor {t} of subgraph {s} has the shape {[int(d) for d in tensor.shape]}"
        for o, op in enumerate(sub.operators or []):
            if not 0 <= op.opcodeIndex < n_codes:
                return f"operator {o} of subgraph {s} uses opcode {op.opcodeIndex}; the file defines {n_codes}"
            for role, indices in (("input", op.inputs), ("output", op.outputs)):
                for i in indices if indices is not None else []:
                    if not -1 <= int(i) < n_tensors:  # -1: an omitted optional input
                        return f"operator {o} of subgraph {s} has {role} tensor {int(i)}; the subgraph has {n_tensors}"
        for role, indices in (("input", sub.inputs), ("output", sub.outputs)):
            for i in indices if indices is not None else []:
                if not 0 <= int(i) < n_tensors:
                    return f"subgraph {s} {role} is tensor {int(i)}; the subgraph has {n_tensors}"
    return None


def inspect_tvm(path: Path) -> dict:
    sidecar = path.with_name(path.name + ".json")
    info = {"path": str(path), "format": "tvm", "size_bytes": path.stat().st_size,
            "elf_machine": _elf_machine(path)}
    if sidecar.is_file():
        try:
            described = json.loads(sidecar.read_text())
            info.update({k: v for k, v in described.items() if k not in info})
        except (ValueError, AttributeError, UnicodeDecodeError):
            raise ModelLoadError(f"{sidecar}: not a valid description of {path.name} (bad JSON); "
                                 "recompile the artifact") from None
    return info


def _elf_machine(path: Path) -> str:
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF" or len(head) < 20:
        raise ModelLoadError(f"{path}: not an ELF shared object")
    machine = int.from_bytes(head[18:20], "little")
    return {62: "x86_64", 183: "aarch64", 40: "arm", 243: "riscv"}.get(machine, f"e_machine={machine}")


def inspect_onnx(path: Path) -> dict:
    from edgec.frontends.onnx_file import load_onnx

    model = load_onnx(path)
    ops: dict[str, int] = {}
    for node in model.graph:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {
        "path": str(path), "format": "onnx", "size_bytes": path.stat().st_size,
        "opset": model.opset_imports.get("", None), "nodes": len(model.graph), "ops": dict(sorted(ops.items())),
        "inputs": [{"name": v.name, "shape": [d if isinstance(d, int) else str(d) for d in (v.shape or ())]}
                   for v in model.graph.inputs],
        "outputs": [{"name": v.name, "shape": [d if isinstance(d, int) else str(d) for d in (v.shape or ())]}
                    for v in model.graph.outputs],
    }


def inspect_artifact(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    handlers = {".tflite": inspect_tflite, ".so": inspect_tvm, ".onnx": inspect_onnx}
    if path.suffix not in handlers:
        raise EdgecError(f"{path}: cannot inspect '{path.suffix}' files; expected .tflite, .so or .onnx")
    return handlers[path.suffix](path)
