"""A tuning database: a plain folder of MetaSchedule JSON records that compiles read.

    <db>/database_workload.json        one line per task (PrimFunc), keyed by its structure
    <db>/database_tuning_record.json   measured schedules (trace + run seconds) per workload

Records are keyed by the PrimFunc's structure (MetaSchedule's "structural" equality: shapes,
dtypes and the fused epilogue, not weights or names), so any model whose legalized kernels
match a tuned one reuses its record, whichever model was tuned. One folder per target: a
record holds a schedule for that target's instruction set.

The schedule stage applies a database before edgec's default rule (pipeline.py): a task
with a record runs its tuned schedule, every other task keeps the default one.
"""

from __future__ import annotations

from pathlib import Path

import tvm
import tvm_ffi
from tvm import relax, tirx
from tvm.s_tir import meta_schedule as ms

from edgec.errors import EdgecError
from edgec.lower.tvm.flops import kernel_flops

WORKLOADS = "database_workload.json"
RECORDS = "database_tuning_record.json"


def default_db_dir(target_name: str) -> Path:
    return Path(".cache") / "edgec" / "tuning" / target_name


def check_db_dir(db_dir: str | Path, *, must_exist: bool) -> Path:
    """The folder as a Path, or an EdgecError saying what is wrong with it."""
    path = Path(db_dir)
    if path.exists() and not path.is_dir():
        raise EdgecError(f"tuning database '{path}' is a file; a tuning database is a folder "
                         f"(it holds {WORKLOADS} and {RECORDS}): pass a folder path")
    if must_exist and not (path / WORKLOADS).is_file():
        raise EdgecError(f"tuning database '{path}' has no {WORKLOADS}: tune into it first "
                         f"(edgec tune MODEL --target T --db {path})")
    return path


def open_database(db_dir: Path) -> ms.database.JSONDatabase:
    db_dir.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(work_dir=str(db_dir), module_equality="structural")


def best_seconds(db: ms.database.Database, func: tirx.PrimFunc) -> float | None:
    """Median run time of the best record for `func`'s workload, or None when untuned."""
    mod = _task_module(func)
    if not db.has_workload(mod):
        return None
    records = db.get_top_k(db.commit_workload(mod), 1)
    if not records or not records[0].run_secs:
        return None
    return median_seconds(records[0].run_secs)


def median_seconds(run_secs) -> float:
    """The median of a measurement's run times (MetaSchedule's FloatImm list or floats)."""
    secs = sorted(float(s) for s in run_secs)
    return secs[len(secs) // 2]


def apply_database(db_dir: Path, findings: list[dict]):
    """The schedule stage's pass: tuned records replace their PrimFuncs' bodies.

    `findings` receives one entry per kernel of the model: name, calls, tuned (bool), the
    record's median seconds when tuned, and FLOPs (for the untuned ones' time estimate)."""

    @tvm.transform.module_pass(opt_level=0, name="EdgecApplyTuningDatabase")
    def _apply(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        db = open_database(db_dir)
        rows = _kernel_findings(mod, db)
        with db:
            applied = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        for row in rows:  # tuned means the record was applied, not only that one exists
            gv = applied.get_global_var(row["kernel"])
            row["tuned"] = row["tuned"] and not tvm_ffi.structural_equal(applied[gv], mod[gv])
            if row["tuned"] and not applied[gv].attrs.get("tirx.is_scheduled"):
                applied[gv] = applied[gv].with_attr("tirx.is_scheduled", True)  # the default rule skips it
        findings.extend(rows)
        return applied

    return _apply


def _kernel_findings(mod: tvm.IRModule, db) -> list[dict]:
    calls = _call_counts(mod)
    rows = []
    for gv, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc) or (func.attrs is not None and func.attrs.get("tirx.is_scheduled")):
            continue
        secs = best_seconds(db, func)
        flops = float(kernel_flops(func))
        rows.append({"kernel": gv.name_hint, "calls": calls.get(gv.name_hint, 1), "tuned": secs is not None,
                     "record_seconds": secs, "flops": flops})
    return rows


def time_shares(rows: list[dict]) -> dict:
    """Each kernel's estimated share of the model's time, and how it was estimated.

    Tuned kernels: their record's measured median x calls. Untuned kernels have no
    measurement in the database; their time is estimated from their FLOPs at the tuned
    kernels' overall FLOP rate (None when nothing is tuned, or for a kernel without FLOPs:
    nothing to scale by)."""
    tuned = [r for r in rows if r["tuned"]]
    tuned_s = sum(r["record_seconds"] * r["calls"] for r in tuned)
    tuned_flops = sum(r["flops"] * r["calls"] for r in tuned)
    rate = tuned_flops / tuned_s if tuned_s > 0 and tuned_flops > 0 else None
    for r in rows:
        if r["tuned"]:
            r["est_seconds"] = r["record_seconds"] * r["calls"]
        else:
            # A kernel without FLOPs (a transpose, a pad) has nothing to scale: not estimated.
            r["est_seconds"] = r["flops"] * r["calls"] / rate if rate and r["flops"] > 0 else None
    total = sum(r["est_seconds"] for r in rows if r["est_seconds"] is not None)
    for r in rows:
        r["time_share"] = r["est_seconds"] / total if total and r["est_seconds"] is not None else None
    return {
        "tasks": len(rows),
        "tuned": len(tuned),
        "untuned": len(rows) - len(tuned),
        "tuned_time_share": sum(r["time_share"] or 0.0 for r in tuned) if total else None,
        "estimated_by": ("tuned kernels: the database record's measured median run time x calls; untuned "
                         "kernels: their FLOPs at the tuned kernels' overall FLOP rate (not measured)"),
        "kernels": sorted(rows, key=lambda r: -(r["est_seconds"] or 0.0)),
    }


def _task_module(func: tirx.PrimFunc) -> tvm.IRModule:
    # MetaSchedule keys workloads by an IRModule with one "main" (as extract_tasks does).
    return tvm.IRModule({"main": func.with_attr("global_symbol", "main")})


def _call_counts(mod: tvm.IRModule) -> dict[str, int]:
    counts: dict[str, int] = {}

    def visit(expr):
        if isinstance(expr, relax.Call) and expr.op == tvm.ir.Op.get("relax.call_tir"):
            name = expr.args[0].name_hint
            counts[name] = counts.get(name, 0) + 1

    for func in mod.functions.values():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return counts
