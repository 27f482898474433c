"""int8 compile time: edgec against litert-torch + ai-edge-quantizer, in one run.

    make bench-compile-time      # or: .venv/bin/python benchmarks/bench_compile_time.py [--rounds 2]

Both tools start from the same torch.export program (the zoo's MobileNet v2 at 224x224,
random weights, seed 0) and the same calibration samples (256 by default, standard normal
at 1x3x224x224), and each runs as a fresh process, as a user would run it:

- edgec: `edgec compile model.pt2 --target x86_64-int8 --calib calib.npz` (TFLite and TVM,
  verified, with the per-layer report), and the same with `--format tflite`;
- litert-torch converts the module to float TFLite, ai-edge-quantizer calibrates it and
  quantizes it with its static int8 recipe (benchmarks/peers/litert_torch_int8.py), in the
  optional environment .venv-litert-torch (`make peers-litert-torch`).

The runs interleave round by round. Each is timed in wall-clock seconds and in CPU seconds
(user + system of the process and its children): on a shared machine the wall time swings
with other people's load, the CPU time much less. The ratio is edgec / peer (<= 1: edgec is
no slower). Each tool's own step timings come along (edgec's report, the peer's JSON line).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
EDGEC = REPO / ".venv" / "bin" / "edgec"
PEER_PYTHON = REPO / ".venv-litert-torch" / "bin" / "python"
PEER_SCRIPT = REPO / "benchmarks" / "peers" / "litert_torch_int8.py"
TARGET = "x86_64-int8"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of one fresh process; a failure stops the benchmark, with its output."""
    cpu, wall = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stdout


def _prepare(work: Path, samples: int, resolution: int) -> tuple[Path, Path]:
    import torch

    from edgec import zoo

    built = zoo.build("mobilenet_v2", resolution=resolution, seed=0)
    program = torch.export.export(built.module.eval(), built.example_inputs)
    pt2 = work / "mobilenet_v2.pt2"
    torch.export.save(program, pt2)
    calib = work / "calib.npz"
    rng = np.random.default_rng(0)
    np.savez(calib, x=rng.standard_normal((samples, 3, resolution, resolution)).astype(np.float32))
    return pt2, calib


def _edgec(pt2: Path, calib: Path, out: Path, formats: str | None) -> dict:
    cmd = [str(EDGEC), "compile", str(pt2), "--target", TARGET, "--calib", str(calib), "-o", str(out)]
    if formats:
        cmd += ["--format", formats]
    wall, cpu, _ = _timed(cmd)
    report = json.loads((out / f"{pt2.stem}.{TARGET}.report.json").read_text())
    tflite = out / f"{pt2.stem}.{TARGET}.tflite"
    return {"wall_s": wall, "cpu_s": cpu, "steps": report["timings"], "tflite_bytes": tflite.stat().st_size}


def _peer(pt2: Path, calib: Path, out: Path) -> dict:
    tflite = out / "peer_int8.tflite"
    out.mkdir(parents=True, exist_ok=True)
    wall, cpu, stdout = _timed([str(PEER_PYTHON), str(PEER_SCRIPT), str(pt2), str(calib), str(tflite)])
    line = next(ln for ln in reversed(stdout.splitlines()) if ln.startswith("{"))
    # The peer's file must be a model LiteRT runs, or its time means nothing.
    from edgec.runtimes.litert import LiteRTRuntime

    rt = LiteRTRuntime(tflite)
    rt.run([np.zeros(spec.shape, spec.dtype) for spec in rt.inputs])
    return {"wall_s": wall, "cpu_s": cpu, "steps": json.loads(line)["timings"], "tflite_bytes": tflite.stat().st_size}


def _median(runs: list[dict], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "compile_time.json")
    args = ap.parse_args(argv)
    have_peer = PEER_PYTHON.exists()
    if not have_peer:
        print("(no .venv-litert-torch: run `make peers-litert-torch` for the litert-torch column)", file=sys.stderr)
    runs: dict[str, list[dict]] = {"edgec": [], "edgec --format tflite": []}
    if have_peer:
        runs["litert-torch + ai-edge-quantizer"] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pt2, calib = _prepare(work, args.samples, args.resolution)
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                out = work / f"{r}-{len(runs[name])}-{name.split()[0]}"
                if name.startswith("litert"):
                    result = _peer(pt2, calib, out)
                else:
                    result = _edgec(pt2, calib, out, "tflite" if "tflite" in name else None)
                runs[name].append(result)
                print(f"round {r + 1}: {name}: {result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU",
                      file=sys.stderr)
    summary = {name: {"wall_s": _median(rs, "wall_s"), "cpu_s": _median(rs, "cpu_s")} for name, rs in runs.items()}
    peer = summary.get("litert-torch + ai-edge-quantizer")
    if peer:
        for name in ("edgec", "edgec --format tflite"):
            summary[name]["ratio_to_peer"] = {k: summary[name][k] / peer[k] for k in ("wall_s", "cpu_s")}
    result = {"model": f"mobilenet_v2 {args.resolution}x{args.resolution}, random weights (seed 0)",
              "calibration_samples": args.samples, "rounds": args.rounds, "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "summary": summary, "runs": runs}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nint8 compile, MobileNet v2 {args.resolution}, {args.samples} calibration samples, "
          f"median of {args.rounds} round(s), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print("| tool | wall s | CPU s | edgec / peer (wall, CPU) |")
    print("| --- | --- | --- | --- |")
    for name, s in summary.items():
        ratio = s.get("ratio_to_peer")
        ratio = f"{ratio['wall_s']:.2f}x, {ratio['cpu_s']:.2f}x" if ratio else ""
        print(f"| {name} | {s['wall_s']:.1f} | {s['cpu_s']:.1f} | {ratio} |")
    for name, rs in runs.items():
        steps = ", ".join(f"{k} {v:.1f}" for k, v in rs[-1]["steps"].items())
        print(f"  {name} steps (s): {steps}")
    print(f"\n(json: {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
