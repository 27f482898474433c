"""The Relax pipeline of the TVM lowering: named stages of passes, run in order.

lower_tvm (build.py) imports a model, runs these stages on it, then hands the lowered
IRModule to tvm.compile with no pipeline of its own. A stage failure becomes an EdgecError
naming the stage and the target.
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Mapping, Sequence

import tvm
from tvm import relax

from edgec.errors import EdgecError
from edgec.lower.tvm.cuda import fp16_passes
from edgec.lower.tvm.fast_math import fast_math
from edgec.lower.tvm.fusion import block_fusion_passes
from edgec.lower.tvm.importer import short_reason
from edgec.lower.tvm.qdq import legalize_qdq
from edgec.lower.tvm.schedules import default_cpu_schedule
from edgec.lower.tvm.tuning_db import apply_database, check_db_dir
from edgec.targets import Target

# The Relax pipeline, in order. Each stage is a list of passes; the empty ones are where
# edgec's own passes go (lower_tvm's `extra_passes`, or relax_pipeline for a target's recipe):
#   dispatch   TVM's library dispatch for the target (sampling, sort/scan)
#   rewrite    graph rewrites on high-level Relax ops, before they become loops:
#              e.g. int8 QDQ legalization, block fusion with FuseOpsByPattern
#   legalize   Relax ops -> TIR PrimFuncs, constant folding, operator fusion
#   schedule   PrimFunc scheduling: e.g. dlight rules or a MetaSchedule tuning database
#   lower      dataflow -> VM-executable Relax (CallTIRRewrite, ...)
#   finalize   memory planning and VM lowering
RELAX_STAGES = ("dispatch", "rewrite", "legalize", "schedule", "lower", "finalize")

Passes = Sequence[tvm.transform.Pass]
_log = logging.getLogger(__name__)

# Float 2-D convs on CPU run channels-last: NHWC activations, HWIO weights (folded at build
# time). The output channels are then the contiguous axis of both the output and the
# weights, so the default schedule vectorizes over them whatever the plane's width, and
# depthwise convs vectorize too (stride 2 included). MobileNet v2 224, default schedules,
# 1 thread: 39.5 ms NCHW -> 15.0 ms NHWC (the 7x7 and 14x14 planes had no vector width).
CHANNELS_LAST = {"relax.nn.conv2d": ["NHWC", "HWIO"]}


def relax_pipeline(
    target: Target, extra_passes: Mapping[str, Passes] | None = None, tuning_findings: list | None = None,
) -> list[tuple[str, list[tvm.transform.Pass]]]:
    """The named stages lower_tvm runs for `target`; `extra_passes[stage]` is appended to a stage.

    With `target.options["tuning_db"]` (a folder, tuning_db.py) the schedule stage first applies
    its records; `tuning_findings` then receives one row per kernel (tuned or not)."""
    extra_passes = dict(extra_passes or {})
    unknown = set(extra_passes) - set(RELAX_STAGES)
    if unknown:
        raise ValueError(f"unknown Relax stage(s) {sorted(unknown)}; stages are {', '.join(RELAX_STAGES)}")
    tvm_target = tvm_target_of(target)
    backend = _backend_pipeline(target, tvm_target)
    # Unlike tvm.compile's "default" CPU pipeline, the backend's legalize stage fuses
    # operators (FuseOps/FuseTIR): fewer PrimFuncs, fewer intermediate tensors.
    stages = {
        "dispatch": backend.library_dispatch_passes(tvm_target),
        "rewrite": [],
        "legalize": backend.legalize_passes(tvm_target),
        "schedule": [],
        "lower": backend.dataflow_lower_passes(tvm_target),
        "finalize": backend.finalize_passes(tvm_target),
    }
    if target.precision == "fp16":  # fp16 conv/matmul, fp32 accumulation and I/O
        stages["rewrite"] = [*stages["rewrite"], *fp16_passes()]
    if target.is_integer:  # QDQ patterns -> int8 x int8 -> int32 conv2d/matmul (qdq.py)
        stages["rewrite"] = [legalize_qdq(), *stages["rewrite"]]
    if channels_last_convs(target, tvm_target):
        stages["rewrite"] = [*stages["rewrite"], convert_to_channels_last]
    if target.options.get("block_fusion"):  # devices.yaml: one tiled kernel per ConvFirst/MBConv block
        # After the layout change: FuseBlocks groups the convs as they will run.
        for name, passes in block_fusion_passes().items():
            stages[name] = list(stages[name]) + passes
    if tvm_target.kind.name == "llvm":
        # Vectorizable exp/sigmoid/tanh/erf (LLVM would call libm once per lane); last in
        # legalize, so tuning tasks are these PrimFuncs too.
        stages["legalize"] = [*stages["legalize"], fast_math]
        # After block fusion's own schedule: the default rule leaves fused blocks alone.
        stages["schedule"] = list(stages["schedule"]) + [default_cpu_schedule]
    if target.options.get("tuning_db"):
        # First: a kernel with a record runs it (and is marked scheduled, so the rules after
        # leave it alone); the others keep their default schedule.
        db_dir = check_db_dir(target.options["tuning_db"], must_exist=True)
        findings = tuning_findings if tuning_findings is not None else []
        stages["schedule"] = [apply_database(db_dir, findings), *stages["schedule"]]
    return [(name, list(stages[name]) + list(extra_passes.get(name, ()))) for name in RELAX_STAGES]


def channels_last_convs(target: Target, tvm_target: tvm.target.Target) -> bool:
    """Whether the lowering converts float convs to NHWC/HWIO (CHANNELS_LAST). Not for integer
    targets (qdq.py makes every int8 conv channels-last itself, int8_dot's included),
    nor GPUs (dlight's rules take TVM's layouts as they come)."""
    return tvm_target.kind.name == "llvm" and not target.is_integer


@tvm.transform.module_pass(opt_level=0, name="EdgecChannelsLast")
def convert_to_channels_last(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """Relax's ConvertLayout to CHANNELS_LAST, or the module as it was where ConvertLayout cannot
    carry the layout through an op (measured: opset-7 ONNX files whose 5-D ops have no layout
    rule stop it with "Invalid SLayout"): NCHW runs the same numbers, only slower."""
    try:
        return relax.transform.ConvertLayout(CHANNELS_LAST)(mod)
    except Exception as exc:  # noqa: BLE001 - an optimization that does not apply, not a failed build
        _log.info("float convs stay NCHW: Relax's ConvertLayout failed: %s", str(exc).splitlines()[0][:200])
        return mod


def relax_op_histogram(mod: tvm.IRModule) -> dict[str, int]:
    """How many calls of each Relax operator (e.g. relax.nn.conv2d) the module's functions make."""
    counts: dict[str, int] = {}

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            counts[expr.op.name] = counts.get(expr.op.name, 0) + 1

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return dict(sorted(counts.items()))


def run_stages(mod, tvm_target, stages, target: Target):
    relax_ops: dict[str, int] = {}
    seconds: dict[str, float] = {}
    entering_legalize = mod
    with tvm_target:
        for name, passes in stages:
            if name == "legalize":
                # The op mix the model reaches TVM with, after edgec's rewrites and before
                # operators dissolve into PrimFuncs.
                relax_ops = relax_op_histogram(mod)
                entering_legalize = mod
            t0 = time.perf_counter()
            try:
                mod = tvm.transform.Sequential(passes, name=f"edgec_{name}")(mod)
            except Exception as exc:  # noqa: BLE001
                raise EdgecError(
                    f"Apache TVM's Relax pipeline failed in stage '{name}' for target "
                    f"'{target.name}': {short_reason(exc)}"
                ) from exc
            seconds[name] = time.perf_counter() - t0
    return mod, relax_ops, seconds, entering_legalize


def tvm_target_of(target: Target) -> tvm.target.Target:
    try:
        return tvm.target.Target(dict(target.tvm_target))
    except Exception as exc:  # noqa: BLE001
        raise EdgecError(
            f"target '{target.name}' has an invalid tvm_target {target.tvm_target} in devices.yaml: "
            f"{short_reason(exc)}"
        ) from exc


def _backend_pipeline(target: Target, tvm_target: tvm.target.Target):
    """TVM's per-backend stage lists, e.g. tvm/relax/backend/cpu_generic/pipeline.py."""
    # Imported as modules: TVM 0.27's relax.pipeline.dataflow_lower_passes looks the function
    # up on the backend package, whose __init__ does not export it (AttributeError for llvm).
    backends = {"llvm": "cpu_generic", "cuda": "cuda"}
    kind = tvm_target.kind.name
    if kind not in backends:
        raise EdgecError(
            f"target '{target.name}': lower_tvm has no Relax pipeline for TVM target kind '{kind}'; "
            f"supported kinds: {', '.join(backends)}"
        )
    return importlib.import_module(f"tvm.relax.backend.{backends[kind]}.pipeline")
