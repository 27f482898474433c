"""Tune a model's TVM kernels with MetaSchedule and keep the records in a tuning database.

    onnx_ir.Model --import, Relax stages up to legalize (pipeline.py)--> fused PrimFuncs
        --extract_tasks--> one task per distinct PrimFunc (weight: its number of calls)
        --evolutionary search, xgboost cost model, measured (measure.py)--> <db>/ records

The tasks are the PrimFuncs exactly as lower_tvm's schedule stage receives them, so a
compile with `--tuning-db` finds a record for every tuned task (tuning_db.py). Records
already in the database count: a task whose workload has a record is tuned further only
with the trials left after the untuned ones had theirs (MetaSchedule's task scheduler).

Budget: `trials` in all (MetaSchedule's max_trials_global) and, optionally, `minutes` of
wall time, checked after each batch: the batch that passes it is the last (its records kept).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import onnx_ir
import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from edgec.errors import EdgecError
from edgec.ir import to_proto
from edgec.lower.tvm.frontend_fixes import fix_for_relax
from edgec.lower.tvm.importer import import_onnx
from edgec.lower.tvm.measure import InProcessBuilder, make_runner, remove_artifact
from edgec.lower.tvm.pipeline import relax_pipeline, run_stages, tvm_target_of
from edgec.lower.tvm.tuning_db import best_seconds, check_db_dir, median_seconds, open_database
from edgec.lower.tvm.tuning_seed import instruction_kernels, seed_default_schedules
from edgec.targets import Registry, Target

Log = Callable[[str], None]
# Stages whose output is what the schedule stage (and so the database) sees.
_UP_TO_SCHEDULE = ("dispatch", "rewrite", "legalize")


def check_budget(trials: int, minutes: float | None) -> None:
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise EdgecError(f"--trials {trials!r}: tuning needs at least 1 trial (e.g. --trials 2000 for a "
                         "MobileNet, 32 per task at least)")
    if minutes is not None and not (minutes > 0 and math.isfinite(minutes)):
        raise EdgecError(f"--minutes {minutes!r}: expected a positive number of minutes")


def tune_model(model: onnx_ir.Model, target: Target, registry: Registry, db_dir: str | Path, *, trials: int,
               minutes: float | None = None, device: str | None = None, log: Log = print) -> dict:
    """Tune `model`'s kernels for `target` into `db_dir`; returns a summary for the terminal/report."""
    check_budget(trials, minutes)
    db_dir = check_db_dir(db_dir, must_exist=False)
    tvm_target = tvm_target_of(target)
    if tvm_target.kind.name != "llvm":
        raise EdgecError(f"target '{target.name}': edgec tune measures CPU targets (llvm); "
                         f"'{tvm_target.kind.name}' kernels keep their default schedules")
    runner, where = make_runner(target, registry, device, log)  # a missing board stops here, before any work
    _import_cpu_tensor_intrinsics()

    started = time.perf_counter()
    mod = _legalized(model, target, tvm_target)
    tasks = ms.relax_integration.extract_tasks(mod, tvm_target)
    tasks = [t for t in tasks if not t.mod.attrs.get("tirx.is_scheduled", False)]
    on_instructions = instruction_kernels(tasks, tvm_target)
    tasks = [t for t in tasks if t.task_name not in on_instructions]
    if not tasks:
        raise EdgecError(f"the model has no kernels to tune for '{target.name}' (all are already scheduled)")
    database = open_database(db_dir)
    before = {t.task_name: best_seconds(database, t.dispatched[0]["main"]) for t in tasks}
    log(f"{len(tasks)} tasks, {sum(v is not None for v in before.values())} already in {db_dir}; "
        f"measuring on {where}"
        + (f"; {len(on_instructions)} int8 kernel(s) keep their dot-product schedule" if on_instructions else ""))

    tune_target = _with_cores(tvm_target)
    builder = InProcessBuilder()
    unrecorded = [t for t in tasks if before[t.task_name] is None]
    seeded = seed_default_schedules(unrecorded, database, builder, runner, tvm_target, tune_target, log)
    contexts = [
        ms.TuneContext(mod=t.dispatched[0], target=tune_target, space_generator="post-order-apply",
                       search_strategy=_search(), task_name=t.task_name, rand_state=i, num_threads=1,
                       logger=_quiet_logger(t.task_name)).clone()
        for i, t in enumerate(tasks)
    ]
    deadline = started + minutes * 60 if minutes else None
    # "best so far" starts from the database's best, the default schedule's record included.
    progress = _Progress(tasks, {t.task_name: _min(before[t.task_name], seeded.get(t.task_name)) for t in tasks},
                         deadline, log)
    # Every task gets a first batch when trials allow; batches of 16 at most, so a wall-time
    # budget (checked after each batch) is kept within a batch's time on a small machine.
    per_iter = max(4, min(16, trials // len(tasks)))
    try:
        ms.tune_tasks(
            tasks=contexts, task_weights=[float(t.weight) for t in tasks], work_dir=str(db_dir),
            max_trials_global=trials, num_trials_per_iter=per_iter,
            builder=builder, runner=runner, database=database, cost_model=_cost_model(),
            measure_callbacks=[*ms.MeasureCallback.create("default"), progress.callback()],
        )
    except EdgecError:
        raise
    except Exception as exc:  # noqa: BLE001
        if progress.out_of_time:
            pass  # the time budget's stop (_OutOfTime), raised through TVM's C++ task scheduler
        else:
            raise EdgecError(f"MetaSchedule tuning failed for '{target.name}': {str(exc).splitlines()[0][:300]}") \
                from exc
    after = {t.task_name: best_seconds(database, t.dispatched[0]["main"]) for t in tasks}
    rows = [{"task": t.task_name, "calls": int(t.weight), "before_seconds": before[t.task_name],
             "default_seconds": seeded.get(t.task_name),
             "best_seconds": after[t.task_name], "trials": progress.trials.get(t.task_name, 0)} for t in tasks]
    return {
        "target": target.name, "db": str(db_dir), "measured_on": where,
        "tasks": len(tasks), "tuned": sum(r["best_seconds"] is not None for r in rows),
        "seeded_with_default": len(seeded), "dot_product_kernels": len(on_instructions),
        "trials": sum(progress.trials.values()), "seconds": time.perf_counter() - started,
        "stopped_by": "time budget" if progress.out_of_time else "trial budget",
        "rows": rows,
    }


def _min(*values):
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _import_cpu_tensor_intrinsics() -> None:
    """Import tvm.s_tir.tensor_intrin (MetaSchedule's TuneContext does) without its GPU/DSP parts.

    Its cuda module alone measured 41 s to import on this machine (TVMScript-parsing hundreds
    of intrinsics); CPU tuning uses the x86/arm ones. The skipped modules are left unimported,
    not faked: a later `import tvm.s_tir.tensor_intrin.cuda` loads and registers them."""
    import sys
    import types

    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return
    skipped = [f"tvm.s_tir.tensor_intrin.{n}" for n in ("cuda", "rocm", "hexagon")]
    sys.modules.update({name: types.ModuleType(name) for name in skipped})
    try:
        import tvm.s_tir.tensor_intrin as intrinsics
    finally:
        for name in skipped:
            sys.modules.pop(name, None)
    for name in skipped:
        intrinsics.__dict__.pop(name.rsplit(".", 1)[1], None)


def _legalized(model: onnx_ir.Model, target: Target, tvm_target) -> tvm.IRModule:
    """The model as lower_tvm's schedule stage will see it (same fixes, import and stages)."""
    model = fix_for_relax(model, target.name)
    mod = import_onnx(to_proto(model), target.name)
    stages = [(n, p) for n, p in relax_pipeline(target) if n in _UP_TO_SCHEDULE]
    mod, *_ = run_stages(mod, tvm_target, stages, target)
    return mod


def _with_cores(tvm_target) -> tvm.target.Target:
    # MetaSchedule's parallelization rules need the core count in the target; the kernels'
    # workload keys do not include the target, so records still match the compile's target.
    import os

    config = dict(tvm_target.export())
    config.setdefault("num-cores", os.cpu_count() or 1)
    return tvm.target.Target(config)


def _search():
    # MetaSchedule's defaults (a population of 512, 4 genetic rounds) spent over 6 minutes
    # on MobileNet v2's first batch here, with no candidate measured; a quarter of the
    # population and half the rounds keep batches to seconds on a 2-core machine.
    return ms.search_strategy.EvolutionarySearch(population_size=128, init_min_unmeasured=16,
                                                 genetic_num_iters=2)


def _cost_model():
    try:
        import xgboost  # noqa: F401
    except ImportError:
        return ms.CostModel.create("random")  # works, searches blindly: say so in the summary
    return ms.CostModel.create("xgb", num_tuning_cores=1)


def _quiet_logger(name: str):
    import logging

    logger = logging.getLogger(f"edgec.tune.{name}")
    logger.setLevel(logging.WARNING)  # MetaSchedule's per-task INFO lines would drown the progress
    return logger


class _OutOfTime(Exception):
    """Raised from the measure callback to end tuning when the --minutes budget is spent."""


class _Progress:
    """Progress lines (task, trials, best latency so far) and the wall-time budget."""

    def __init__(self, tasks, before, deadline, log):
        self.names = [t.task_name for t in tasks]
        self.best = dict(before)
        self.trials: dict[str, int] = {}
        self.deadline = deadline
        self.log = log
        self.out_of_time = False

    def callback(self):
        progress = self

        @derived_object
        class _Callback(ms.measure_callback.PyMeasureCallback):
            def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
                progress.on_batch(task_scheduler, task_id, builder_results, runner_results)

        return _Callback()

    def on_batch(self, scheduler, task_id, builder_results, runner_results):
        name = self.names[task_id]
        self.trials[name] = self.trials.get(name, 0) + len(runner_results)
        for b, r in zip(builder_results, runner_results):
            remove_artifact(b.artifact_path)
            if r.run_secs and not r.error_msg:
                secs = median_seconds(r.run_secs)
                if self.best.get(name) is None or secs < self.best[name]:
                    self.best[name] = secs
        best = self.best.get(name)
        failed = sum(1 for r in runner_results if r.error_msg)
        self.log(f"task {task_id + 1}/{len(self.names)} {name}: {self.trials[name]} trials, best "
                 + (f"{best * 1e6:.1f} us" if best is not None else "none yet")
                 + (f" ({failed} of this batch failed)" if failed else "")
                 + f"; {sum(self.trials.values())} trials in all")
        if self.deadline is not None and time.perf_counter() > self.deadline and not self.out_of_time:
            # Terminating tasks from a callback trips the scheduler's own check on the task it
            # is finishing (measured: "Check failed: !task->is_terminated"); stopping the run
            # is safe here because AddToDatabase, earlier in the callback list, has already
            # written this batch's records.
            self.out_of_time = True
            self.log("time budget spent: stopped after this batch")
            raise _OutOfTime()
