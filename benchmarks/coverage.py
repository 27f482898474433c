"""Real-architecture coverage: build 40+ timm and transformers models (random weights, no network),
compile each for x86_64-fp32 and x86_64-int8 (--calib random), and tabulate what works.

    .venv/bin/python benchmarks/coverage.py                       # the whole suite (make coverage)
    .venv/bin/python benchmarks/coverage.py --only resnet18,hf_bert --targets x86_64-fp32
    .venv/bin/python benchmarks/coverage.py --list

Each build/export and each compile runs in its own subprocess with a timeout (runner.py), so a crash
(e.g. a runtime abort) or a hang is one failed row naming the stage it died in. Status per row: ok, or
failed at build / export / import / passes / quantize / lower / verify / accuracy, with the cause
(edgec's message names node and op). fp32 rows also need max relative error vs torch <= 1e-4 on every
artifact; int8 rows report SQNR vs torch (random calibration: a coverage figure, not an accuracy one).

Results: benchmarks/results/coverage.json and coverage.md. A run updates the rows it measured (so `--only`
or `--targets` runs add to the table) and keeps the others, each row carrying the date and commit it was
measured at.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.coverage_support.models import SUITE  # noqa: E402
from benchmarks.coverage_support.report import write_results  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
SHIM = REPO / "benchmarks" / "coverage_support" / "torchvision_shim"
TARGETS = ("x86_64-fp32", "x86_64-int8")
_RUNNING: set[subprocess.Popen] = set()  # steps in flight: each in its own session, so stopped by us on exit


def child_env(source: str) -> dict:
    """The environment of a step's subprocess. timm needs `torchvision` importable; when no working one is
    installed (none loads beside torch 2.13 CPU here: the only wheel built for it is a CUDA build whose C
    ops fail to register), only the model-building step of a timm model gets the stand-in
    (torchvision_shim/torchvision/__init__.py says what it provides and why). transformers never gets it:
    it would take the stand-in for a real torchvision and use its image pipeline."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.setdefault("OMP_NUM_THREADS", "2")
    if source == "timm" and not torchvision_works():
        env["PYTHONPATH"] = os.pathsep.join([str(SHIM), env["PYTHONPATH"]])
    return env


@functools.cache
def torchvision_works() -> bool:
    """Whether the installed torchvision (if any) imports what timm takes from it, in a clean process."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    probe = subprocess.run([sys.executable, "-c", "import torchvision.ops.misc, torchvision.transforms.functional"],
                           capture_output=True, timeout=300)
    return probe.returncode == 0


def run_step(args: list[str], result_path: Path, log_path: Path, env: dict, timeout: float,
             resume: bool = False) -> dict:
    """Run one runner step; its result JSON, or a failure naming the stage it was in when it died.
    resume: a result a previous run left in the work folder is taken as it is."""
    if resume and result_path.exists():
        return json.loads(result_path.read_text())
    result_path.unlink(missing_ok=True)
    t = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.coverage_support.runner", *args], cwd=REPO,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _RUNNING.add(proc)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            rc = None
        finally:
            _RUNNING.discard(proc)
    seconds = time.perf_counter() - t
    if rc == 0 and result_path.exists():
        return json.loads(result_path.read_text())
    text = log_path.read_text(errors="replace")
    stages = [ln.split(None, 1)[1] for ln in text.splitlines() if ln.startswith("STAGE ")]
    stage = stages[-1] if stages else "start"
    if rc is None:
        cause = f"timed out after {timeout:.0f} s"
    elif rc < 0:
        cause = f"process killed by {signal.Signals(-rc).name}"
    else:
        tail = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("STAGE ")][-3:]
        cause = f"process exited with {rc}: " + " | ".join(tail)[-800:]
    return {"status": "failed", "stage": stage, "cause": cause, "crashed": True, "seconds": seconds}


def _stop(proc: subprocess.Popen) -> None:
    """Kill a step's own process group (it and its children only) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run_model(name: str, targets: list[str], workdir: Path, timeout: float, formats: str | None = None,
              resume: bool = False) -> list[dict]:
    spec = SUITE[name]
    mdir = workdir / name
    mdir.mkdir(parents=True, exist_ok=True)
    build = run_step(["build", name, str(mdir)], mdir / f"{name}.result.json", mdir / "build.log",
                     child_env(spec.source), timeout, resume)
    rows = []
    for target in targets:
        base = {"model": name, "source": spec.source, "family": spec.family, "target": target,
                "parameters": build.get("parameters"), "inputs": build.get("inputs"), "exported": build.get("exported")}
        if build.get("status") != "ok":
            row = {**base, **{k: build[k] for k in ("status", "stage", "cause", "commit", "date") if k in build}}
        else:
            step = run_step(["compile", name, target, str(mdir)] + ([formats] if formats else []), mdir / f"{name}.{target}.result.json",
                            mdir / f"compile.{target}.log", child_env("edgec"), timeout, resume)
            row = {**base, **step, "model": name, "target": target}
        if build.get("torch_export_error"):
            row["torch_export_error"] = build["torch_export_error"]
        rows.append(row)
    return rows


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def _one_line(row: dict) -> str:
    if row["status"] == "ok":
        extra = f"SQNR {row['sqnr_db']:.1f} dB, max rel {row['max_rel_error']:.1e}"
        return f"ok in {row.get('seconds', 0):.1f} s ({extra})"
    first = (row.get("cause") or "").splitlines()[0][:160] if row.get("cause") else ""
    return f"FAILED at {row.get('stage')}: {first}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated model names (see --list)")
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated (default {','.join(TARGETS)})")
    ap.add_argument("--formats", help="comma-separated artifact formats (default: the target's, tflite and tvm)")
    ap.add_argument("--jobs", type=int, default=1, help="models in parallel (default 1)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per step (build, each compile)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder for coverage.json / coverage.md")
    ap.add_argument("--workdir", type=Path, help="keep exported models, logs and artifacts here")
    ap.add_argument("--resume", action="store_true",
                    help="with --workdir: reuse the step results a previous (interrupted) run left there")
    ap.add_argument("--list", action="store_true", help="print the suite and exit")
    args = ap.parse_args(argv)

    if args.list:
        for spec in SUITE.values():
            print(f"{spec.name:32s} {spec.source:13s} {spec.family}")
        return 0
    names = list(SUITE) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        print(f"error: unknown model(s) {', '.join(unknown)}; --list shows the suite", file=sys.stderr)
        return 2
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    missing = sorted({SUITE[n].source for n in names if importlib.util.find_spec(SUITE[n].source) is None})
    if missing:
        print(f"error: {', '.join(missing)} not installed; pip install -e '.[models]' (see pyproject.toml)",
              file=sys.stderr)
        return 2

    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _git("rev-parse", "--short", "HEAD") + (" (dirty)" if _git("status", "--porcelain") else ""),
            "machine": machine()}
    print(f"coverage: {len(names)} models x {len(targets)} targets, {args.jobs} job(s); {meta['commit']}", flush=True)
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="edgec-coverage.")
        workdir = Path(tmp.name)
    else:
        workdir = args.workdir
    signal.signal(signal.SIGTERM, _interrupt)  # ends the benchmark like Ctrl-C, stopping the steps in flight
    rows: list[dict] = []
    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        futures = [pool.submit(run_model, n, targets, workdir, args.timeout, args.formats, args.resume) for n in names]
        for fut in as_completed(futures):
            for row in fut.result():
                for key, value in meta.items():  # a step's own commit and date (runner.py) win
                    row.setdefault(key, value)
                rows.append(row)
                print(f"[{len(rows)}/{len(names) * len(targets)}] {row['model']} {row['target']}: {_one_line(row)}"
                      f"  ({time.perf_counter() - t0:.0f} s elapsed)", flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {len(rows)} rows; no table written (with --workdir, --resume continues)",
              file=sys.stderr)
        return 130
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list(_RUNNING):  # before the threads that wait on them are joined at exit
            _stop(proc)
        if tmp is not None:
            tmp.cleanup()
    summary = write_results(rows, args.results, set(SUITE))
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
