"""The kernel calls of a lowered TVM module's `main`, in the order the VM runs them.

Shared by the layer table (layers.py) and the block-fusion report (fusion.py); it depends on
neither, so neither depends on the other.
"""

from __future__ import annotations

import tvm
from tvm import relax, tirx


def kernel_calls(mod: tvm.IRModule) -> list[tuple[str, relax.Call]]:
    """(PrimFunc name, call) for every kernel call in `main`, in execution order."""
    main = mod["main"]
    calls = []
    body = main.body
    for block in getattr(body, "blocks", []):
        for binding in block.bindings:
            value = binding.value
            if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.GlobalVar):
                if isinstance(mod[value.op], tirx.PrimFunc):
                    calls.append((value.op.name_hint, value))
    return calls
