"""Lower the IR to an Apache TVM artifact: one self-contained Relax VM shared library.

    onnx_ir.Model --to_proto--> ONNX --import_onnx--> Relax IRModule (weights as constants)
        --relax_pipeline(target): named stages--> lowered IRModule (Relax VM code + PrimFuncs)
        --tvm.compile--> Executable --export_library (cross compiler for arm64)--> <out>.so
                                                               + signature sidecar <out>.so.json

The .so embeds the weights, so a device needs only it (and the TVM runtime); the sidecar
(see signature.py) holds the input/output names, shapes and dtypes, readable without
TVM and without loading a library built for another architecture.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
import onnx_ir
import tvm
from tvm import relax
from tvm.support import cc

from edgec.errors import EdgecError
from edgec.fsutil import atomic_path
from edgec.ir import to_proto
from edgec.lower.tvm.cuda import compiles_at_build, kernel_form, nvcc_build, require_nvcc
from edgec.lower.tvm.frontend_fixes import fix_for_relax
from edgec.lower.tvm.fusion import describe as describe_block_fusion
from edgec.lower.tvm.importer import import_onnx, short_reason
from edgec.lower.tvm.layers import write_layers
from edgec.lower.tvm.pipeline import Passes, relax_pipeline, run_stages, tvm_target_of
from edgec.lower.tvm.qdq import integer_summary
from edgec.lower.tvm.tuning_db import time_shares
from edgec.lower.tvm.signature import Signature, signature_path, write_signature
from edgec.runtimes.base import TensorSpec
from edgec.targets import Target


def lower_tvm(
    model: onnx_ir.Model,
    target: Target,
    out_path: str | Path,
    *,
    extra_passes: Mapping[str, Passes] | None = None,
) -> dict:
    """Compile `model` for `target` into `out_path` (a .so) and its signature sidecar.

    Writes both atomically: on any failure neither file is created or replaced. Returns the
    facts for report.json: path, signature, target, tvm_target, cross_compiler, relax_ops
    (histogram of Relax operator calls entering legalization), relax_functions and
    prim_funcs (counted in the final IRModule), stage_seconds, size_bytes, compile_seconds.
    """
    started = time.perf_counter()
    out_path = Path(out_path)
    tvm_target = tvm_target_of(target)
    fcompile = _library_compiler(target)  # before the slow part: a missing toolchain fails fast
    if tvm_target.kind.name == "cuda" and compiles_at_build():
        require_nvcc(target.name)

    model = fix_for_relax(model, target.name)  # where TVM's ONNX converters differ from ONNX
    proto = to_proto(model)
    mod = import_onnx(proto, target.name)
    signature = _signature(proto, mod, target)

    tuning_rows: list[dict] = []
    mod, relax_ops, stage_seconds, entering_legalize = run_stages(
        mod, tvm_target, relax_pipeline(target, extra_passes, tuning_rows), target)
    try:
        with _kernel_compiler(target, tvm_target):
            executable = tvm.compile(mod, target=tvm_target, relax_pipeline=None)  # stages already ran
    except EdgecError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise EdgecError(
            f"Apache TVM code generation failed for target '{target.name}': {short_reason(exc)}"
        ) from exc

    with atomic_path(out_path) as tmp:
        _export(executable, tmp, fcompile, target)
        # Written before the library's rename, so a library never appears without its signature.
        write_signature(out_path, signature)
        write_layers(out_path, mod)  # per-kernel FLOPs/bytes for `edgec analyze`

    return {
        "format": "tvm",
        "path": str(out_path),
        "signature": str(signature_path(out_path)),
        "target": target.name,
        "tvm_target": dict(target.tvm_target),
        "cross_compiler": target.tvm_cross_compiler,
        "relax_ops": relax_ops,
        "relax_functions": sum(isinstance(f, relax.Function) for f in mod.functions.values()),
        "prim_funcs": sum(isinstance(f, tvm.tirx.PrimFunc) for f in mod.functions.values()),
        "stage_seconds": stage_seconds,
        # Integer convs/matmuls and the ops left in float, counted after the rewrite stage.
        **({"int8": integer_summary(entering_legalize)} if target.is_integer else {}),
        **({"block_fusion": describe_block_fusion(mod)} if target.options.get("block_fusion") else {}),
        **({"cuda_kernels": kernel_form()} if tvm_target.kind.name == "cuda" else {}),
        **({"tuning": {"db": str(target.options["tuning_db"]), **time_shares(tuning_rows)}}
           if target.options.get("tuning_db") else {}),
        "size_bytes": out_path.stat().st_size,
        "compile_seconds": time.perf_counter() - started,
    }


def _kernel_compiler(target: Target, tvm_target: tvm.target.Target):
    """CUDA kernels compile with nvcc into the library (cuda.py); CPU code needs nothing."""
    if tvm_target.kind.name == "cuda":
        return nvcc_build(target.name)
    return contextlib.nullcontext()


def _library_compiler(target: Target):
    """export_library's fcompile for the target: None (host g++) or a checked cross compiler."""
    if target.arch == "wasm32":
        raise EdgecError(
            f"target '{target.name}': TVM WebAssembly artifacts need emscripten and TVM's web "
            "runtime, which lower_tvm does not build yet; build only the tflite format"
        )
    compiler = target.tvm_cross_compiler
    if compiler is None:
        if target.tvm_target.get("kind", "llvm") == "llvm" and not target.is_host_arch:
            raise EdgecError(
                f"target '{target.name}' is for {target.arch} but devices.yaml gives no "
                "tvm_cross_compiler for it (e.g. tvm_cross_compiler: aarch64-linux-gnu-g++)"
            )
        return None
    if shutil.which(compiler) is None:
        # aarch64-linux-gnu-g++ -> Debian's gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
        triple = re.sub(r"-(g\+\+|gcc|c\+\+|cc)(-[0-9.]+)?$", "", Path(compiler).name)
        raise EdgecError(
            f"target '{target.name}' needs the cross compiler '{compiler}', which is not on PATH; "
            f"install it (Debian/Ubuntu: apt-get install gcc-{triple} g++-{triple})"
        )
    return cc.cross_compiler(compiler)


def _export(executable, path: Path, fcompile, target: Target) -> None:
    try:
        if fcompile is None:
            executable.export_library(str(path))
        else:
            executable.export_library(str(path), fcompile=fcompile)
    except Exception as exc:  # noqa: BLE001
        linker = target.tvm_cross_compiler or "the host C++ compiler (g++)"
        raise EdgecError(
            f"linking the TVM library for target '{target.name}' with {linker} failed: {short_reason(exc)}"
        ) from exc


def _signature(proto: onnx.ModelProto, mod: tvm.IRModule, target: Target) -> Signature:
    """Names and dtypes from the ONNX graph; output shapes from what Relax's main returns."""
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [
        TensorSpec(v.name, tuple(d.dim_value for d in v.type.tensor_type.shape.dim), _onnx_dtype(v))
        for v in proto.graph.input
        if v.name not in initializers
    ]
    ret = mod["main"].ret_ty
    returned = list(ret.fields) if isinstance(ret, tvm.ir.TupleType) else [ret]
    if len(returned) != len(proto.graph.output):
        raise EdgecError(
            f"Apache TVM's import returned {len(returned)} output(s) for a graph with "
            f"{len(proto.graph.output)}; this is a bug, please report it with the model"
        )
    outputs = [
        TensorSpec(v.name, _static_dims(r, v), np.dtype(str(r.dtype)) if str(r.dtype) else _onnx_dtype(v))
        for v, r in zip(proto.graph.output, returned)
    ]
    return Signature(
        inputs=inputs, outputs=outputs, target=target.name, arch=target.arch,
        tvm_target=dict(target.tvm_target),
    )


def _static_dims(relax_type, value: onnx.ValueInfoProto) -> tuple[int, ...]:
    shape = getattr(relax_type, "shape", None)
    if shape is not None and all(isinstance(d, tvm.tirx.IntImm) for d in shape.values):
        return tuple(int(d) for d in shape.values)
    # -1 marks a dimension only known at run time (the IR is meant to be static; say so, don't fail).
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim)


def _onnx_dtype(value: onnx.ValueInfoProto) -> np.dtype:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))

