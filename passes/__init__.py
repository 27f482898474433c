"""edgec's graph passes and the registry that target recipes (devices.yaml) name them by.

Each pass lives in its own module, takes an `onnx_ir.Model` and rewrites it in place (see
`base.EdgecPass`). `run_passes` runs a recipe in order and returns one record per pass for
the compile report.
"""

from __future__ import annotations

import time
from typing import Callable

import onnx_ir as ir

from edgec.errors import EdgecError
from edgec.passes.base import EdgecPass, Refusal
from edgec.passes.constant_folding import ConstantFolding
from edgec.passes.constant_gathers import RewriteConstantGathers
from edgec.passes.equalize import CrossLayerEqualization
from edgec.passes.fix_input_shapes import fix_input_shapes
from edgec.passes.fold_activations import FoldActivations
from edgec.passes.fold_batchnorm import FoldBatchNorm
from edgec.passes.fold_conv_pairs import FoldConvPairs
from edgec.passes.remove_identity import RemoveIdentity
from edgec.passes.prune import MagnitudePrune
from edgec.passes.shape_inference import ShapeInference
from edgec.passes.trivial_reductions import RemoveTrivialReductions

__all__ = [
    "PASSES",
    "EdgecPass",
    "Refusal",
    "fix_input_shapes",
    "get_pass",
    "run_passes",
]

PASSES: dict[str, type[EdgecPass]] = {
    cls.name: cls for cls in (ConstantFolding, RemoveIdentity, FoldBatchNorm, ShapeInference,
                               CrossLayerEqualization, FoldActivations, FoldConvPairs,
                               RemoveTrivialReductions, MagnitudePrune, RewriteConstantGathers)
}


def get_pass(name: str, **options) -> EdgecPass:
    """A fresh instance of the pass registered as `name`, configured by `options`."""
    cls = PASSES.get(name)
    if cls is None:
        raise EdgecError(f"unknown pass '{name}'; known passes: {', '.join(sorted(PASSES))}")
    try:
        return cls(**options)
    except TypeError as e:
        raise EdgecError(f"pass '{name}' rejected options {sorted(options)}: {e}") from None


def run_passes(
    model: ir.Model,
    recipe: list[str | ir.passes.PassBase],
    on_progress: Callable[[str], None] | None = None,
) -> tuple[ir.Model, list[dict]]:
    """Run the passes in order on `model` (in place) and return it with one record each.

    `recipe` holds registry names, or pass instances for passes that need options (e.g. a
    quantizer given its calibration data). A record is {name, modified, seconds,
    nodes_before, nodes_after, details, refusals}; `details` and `refusals` are empty for a
    pass that does not follow the EdgecPass convention. Every name is checked before the
    first pass runs, so a typo in a recipe fails at once.
    """
    passes = [get_pass(p) if isinstance(p, str) else p for p in recipe]
    records = []
    for index, pass_ in enumerate(passes, start=1):
        name = getattr(pass_, "name", "") or type(pass_).__name__
        nodes_before = len(model.graph)
        start = time.perf_counter()
        result = pass_(model)
        seconds = time.perf_counter() - start
        model = result.model
        record = {
            "name": name,
            "modified": result.modified,
            "seconds": seconds,
            "nodes_before": nodes_before,
            "nodes_after": len(model.graph),
            "details": "; ".join(getattr(pass_, "details", ())),
            "refusals": [r.as_dict() if isinstance(r, Refusal) else r for r in getattr(pass_, "refusals", ())],
        }
        records.append(record)
        if on_progress is not None:
            summary = record["details"] or ("changed the graph" if result.modified else "no change")
            on_progress(f"pass {index}/{len(passes)} {name}: {summary} ({seconds:.2f} s)")
    return model, records
