"""Seed a tuning database with edgec's default schedule of each task, measured like a candidate.

MetaSchedule's search starts from random samples of its design space. On a 2-core machine
its budget buys a few dozen trials per kernel, and for some kernels the best of them is
slower than the default schedule (schedules.py) the untuned module already runs: applying
that record would make the "tuned" module slower there. Recorded first, the default
schedule is one more measured candidate of the task: the database keeps whichever is
faster, and the evolutionary search may start from it (it draws from the best records).

Kernels the default rule turns into dot-product instructions (int8_dot.py) are not tuned at
all: MetaSchedule's CPU rules do not emit vpdpbusd/sdot, so every candidate would lose to
them. They keep their instruction schedule (`instruction_kernels` says which).
"""

from __future__ import annotations

from typing import Callable

import tvm
from tvm.s_tir import meta_schedule as ms

from edgec.lower.tvm import int8_dot
from edgec.lower.tvm.measure import remove_artifact
from edgec.lower.tvm.schedules import CPUKernels
from edgec.lower.tvm.tuning_db import median_seconds

Log = Callable[[str], None]


def instruction_kernels(tasks, tvm_target) -> set[str]:
    """Names of the tasks whose default schedule maps their inner product to a dot-product
    instruction of `tvm_target` (none on targets without one)."""
    dot = int8_dot.dot_product_of(tvm_target)
    if dot is None:
        return set()
    names = set()
    for task in tasks:
        sch = tvm.s_tir.Schedule(task.dispatched[0]["main"])
        if int8_dot.find_dot_block(sch) is not None:
            names.add(task.task_name)
    return names


def seed_default_schedules(tasks, database, builder, runner, tvm_target, tune_target, log: Log) -> dict[str, float]:
    """Measure the default schedule of each task (those without a record: the caller's choice)
    and commit it; returns the median seconds of each one recorded, by task name. A kernel the
    default rule leaves as TVM wrote it gets no record."""
    rule = CPUKernels()
    todo = []
    for task in tasks:
        mod = task.dispatched[0]
        with tvm_target:
            sch = rule.apply(mod["main"], tvm_target, False)
        if sch is not None:
            todo.append((task, mod, sch))
    if not todo:
        return {}
    log(f"measuring the default schedule of {len(todo)} task(s) as their first records")
    built = builder.build([ms.builder.BuilderInput(sch.mod, tune_target) for _, _, sch in todo])
    inputs, kept = [], []
    for (task, mod, sch), result in zip(todo, built):
        if result.error_msg is None:
            inputs.append(ms.runner.RunnerInput(result.artifact_path, _device_type(tune_target),
                                                ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
            kept.append((task, mod, sch, result.artifact_path))
    futures = runner.run(inputs)
    recorded: dict[str, float] = {}
    for (task, mod, sch, artifact), future in zip(kept, futures):
        result = future.result()
        remove_artifact(artifact)
        if result.error_msg or not result.run_secs:
            continue
        secs = [float(s) for s in result.run_secs]
        database.commit_tuning_record(ms.database.TuningRecord(
            sch.trace, database.commit_workload(mod), secs, tune_target, ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
        recorded[task.task_name] = median_seconds(secs)
    return recorded


def _device_type(target) -> str:
    # The runner opens tvm.runtime.device(name): llvm kernels run on "cpu".
    return "cpu" if target.kind.name == "llvm" else target.kind.name
