"""What each kernel of a lowered TVM module computes and moves: the analyzer's layer table.

A TVM .so carries machine code, not the IR, so lower_tvm writes this table next to the
library (`<library>.layers.json`) while it still has the lowered IRModule. One row per kernel
call of `main`, in execution order (the order the VM runs them, which is how
`edgec analyze` matches its per-call timings to rows):

  symbol          the PrimFunc called
  kind            'op' (TVM's own fusion of one op and its elementwise tail) or the fused block
                  kind (fusion.py), e.g. 'convfirst_block_residual'
  flops           arithmetic of the call (multiply and add count one each); for a tiled block,
                  counted before tiling, so halo recomputation is not credited as useful work
  bytes           compulsory traffic: every argument (inputs, weights, output) moved once
  scratch_bytes   the kernel's own buffers after CompactBufferAllocation (per tile for a
                  tiled block, one thread)
  output_shape    shape of the last argument (the output, destination-passing style)

`workspace(mod)` sums up memory: Relax's planned activation storage plus the largest kernel
scratch; it is what the block-fusion benchmark compares.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import tvm
from tvm import relax, s_tir, tirx

from edgec.fsutil import atomic_write_text
from edgec.lower.tvm.calls import kernel_calls
from edgec.lower.tvm.flops import kernel_flops
from edgec.lower.tvm.fusion import KIND_ATTR

SIDECAR_SUFFIX = ".layers.json"

# The s_tir passes that place and shrink a kernel's buffers (the start of TVM's TIR pipeline).
_COMPACT = (s_tir.transform.CanonicalizeLoop, s_tir.transform.LowerInitBlock,
            s_tir.transform.PlanAndUpdateBufferAllocationLocation, s_tir.transform.ConvertBlocksToOpaque,
            s_tir.transform.CompactBufferAllocation, s_tir.transform.LowerOpaqueBlock)


def layers_path(library: str | Path) -> Path:
    library = Path(library)
    return library.with_name(library.name + SIDECAR_SUFFIX)


def layer_table(mod: tvm.IRModule) -> list[dict]:
    """One row per kernel call of the lowered module (see the module docstring)."""
    facts: dict[str, dict] = {}
    rows = []
    for index, (symbol, _) in enumerate(kernel_calls(mod)):
        if symbol not in facts:
            facts[symbol] = _kernel_facts(mod[symbol])
        rows.append({"index": index, "symbol": symbol, **facts[symbol]})
    return rows


def workspace(mod: tvm.IRModule) -> dict:
    """Activation memory of the lowered module: Relax's planned storage (intermediate tensors
    between kernels, the output included) and the largest scratch any kernel allocates."""
    storage = 0

    def visit(expr):
        nonlocal storage
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) \
                and expr.op.name in ("relax.vm.alloc_storage", "relax.memory.alloc_storage"):
            storage += int(np.prod([int(v) for v in expr.args[0].values]))

    relax.analysis.post_order_visit(mod["main"].body, visit)
    scratch = max((row["scratch_bytes"] for row in layer_table(mod)), default=0)
    return {"relax_storage_bytes": storage, "max_kernel_scratch_bytes": scratch,
            "peak_bytes": storage + scratch}


def write_layers(library: str | Path, mod: tvm.IRModule) -> Path:
    path = layers_path(library)
    atomic_write_text(path, json.dumps({"layers": layer_table(mod), "workspace": workspace(mod)}, indent=1))
    return path


def read_layers(library: str | Path) -> dict | None:
    path = layers_path(library)
    return json.loads(path.read_text()) if path.exists() else None


def _kernel_facts(func: tirx.PrimFunc) -> dict:
    attrs = func.attrs if func.attrs is not None else {}
    flops = kernel_flops(func)
    buffers = [p for p in func.params if getattr(p, "shape", None) is not None]  # buffer-typed params
    return {
        "kind": str(attrs[KIND_ATTR]) if KIND_ATTR in attrs else "op",
        "flops": flops,
        "bytes": sum(_buffer_bytes(b) for b in buffers),
        "scratch_bytes": _scratch_bytes(func),
        "output_shape": [int(d) for d in buffers[-1].shape] if buffers else [],
    }


def _buffer_bytes(buffer) -> int:
    return math.prod(int(d) for d in buffer.shape) * tvm.DataType(str(buffer.dtype)).bits // 8


def _scratch_bytes(func: tirx.PrimFunc) -> int:
    compacted = tvm.transform.Sequential([make() for make in _COMPACT])(tvm.IRModule({"main": func}))
    sizes = s_tir.analysis.calculate_allocated_bytes(compacted)
    return int(sum(int(v) for scopes in sizes.values() for v in scopes.values()))
