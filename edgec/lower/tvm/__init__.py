"""The Apache TVM lowering: an ONNX IR model -> one self-contained Relax VM shared library.

    importer.py     ONNX -> Relax, errors naming the node
    pipeline.py     the named Relax stages (dispatch, rewrite, legalize, schedule, lower, finalize)
    qdq.py          int8 QDQ legalization (integer conv2d/matmul), with qdq_kernels.py
    fusion.py       ConvFirst/MBConv block fusion and its tiled schedule
    calls.py        the kernel calls of a lowered module's main
    layers.py       the per-kernel FLOPs/bytes table for `edgec analyze`
    signature.py    the .so.json sidecar: input/output names, shapes, dtypes
    tuning_db.py    a MetaSchedule records folder: applied in the schedule stage, tuned/untuned report
    measure.py      where tuning candidates are built and timed (host, or an arm64 board over RPC)
    tuning.py       tune_model: MetaSchedule over the kernels the schedule stage receives
    build.py        lower_tvm: import, run the stages, compile, export (cross-compiled for arm64)

`signature.py` does not import TVM (runtimes read a sidecar without it), so this package
imports the TVM-heavy modules only when one of their names is asked for.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "lower_tvm": "edgec.lower.tvm.build",
    "RELAX_STAGES": "edgec.lower.tvm.pipeline",
    "relax_pipeline": "edgec.lower.tvm.pipeline",
    "relax_op_histogram": "edgec.lower.tvm.pipeline",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
