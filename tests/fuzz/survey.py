"""The bad-input survey: every family of hostile or careless input, run through the `edgec`
command as a user would, each case judged clear or not. `python tests/fuzz/survey.py` prints
the table; tests/fuzz/test_survey.py (slow, `make fuzz`) asserts that every case is clear.

Clear means: the expected exit code, no traceback anywhere, one 'error: ...' line holding the
expected words (usage errors: typer's usage message), the output folder exactly as before (no
artifact, no staging folder, earlier artifacts untouched), and no payload marker file.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.cli_run import EDGEC, error_lines, snapshot  # noqa: E402


@dataclasses.dataclass
class Case:
    family: str
    name: str
    args: list
    expect: str | tuple  # words the message must hold (each of them, for a tuple)
    code: int = 2
    usage: bool = False  # typer's usage error instead of an 'error:' line
    marker: Path | None = None
    signal: int | None = None


def build_cases(work: Path) -> list[Case]:
    import numpy as np
    import onnx
    import torch

    from fuzz.crafted import Payload, TinyNet, payload_pickle, pt2_with_payload, save_exported
    from fuzz.files import TFLITE_DAMAGE, calibration_files, tiny_onnx, tiny_tflite, unwritable_folder

    out = str(work / "out")
    good = {"onnx": tiny_onnx(work / "m.onnx"), "pt2": save_exported(work / "m.pt2")}
    torch.jit.save(torch.jit.trace(TinyNet().eval(), (torch.randn(1, 3, 8, 8),)), str(work / "ts.pt"))
    good["pt"] = work / "ts.pt"
    compile_ = lambda model, *extra: ["compile", model, "-t", "x86_64-fp32", "-o", out, *extra]  # noqa: E731
    cases = []

    for kind, src in good.items():
        data = src.read_bytes()
        for how, blob in (("empty", b""), ("truncated", data[: len(data) // 2]), ("random", os.urandom(len(data)))):
            bad = work / f"{how}.{kind}"
            bad.write_bytes(blob)
            cases.append(Case("damaged model files", f"{how} .{kind}", compile_(bad, "--input-shape", "1,3,8,8"),
                              bad.name))
    (work / "adir.onnx").mkdir()
    (work / "m.h5").write_bytes(b"\x89HDF")
    cases += [Case("damaged model files", "missing file", compile_(work / "none.onnx"), "no such file"),
              Case("damaged model files", "a directory", compile_(work / "adir.onnx"), "is a directory"),
              Case("damaged model files", "unknown suffix", compile_(work / "m.h5"), "unknown model file type")]

    for where in ("sample_inputs", "pickled_weight", "opaque_constant", "shape_expression", "node_target"):
        marker = work / f"marker.{where}"
        bad = pt2_with_payload(good["pt2"], work / f"evil_{where}.pt2", marker, where)
        cases.append(Case("crafted pickles", f".pt2 {where}", compile_(bad), "evil_", marker=marker))
    marker = work / "marker.pt"
    torch.save(Payload(marker), str(work / "evil_module.pt"))
    cases.append(Case("crafted pickles", ".pt pickled object", compile_(work / "evil_module.pt", "--input-shape",
                                                                        "1,3,8,8"), "--trust-pickle", marker=marker))
    marker = work / "marker.legacy"
    (work / "evil_legacy.pt").write_bytes(payload_pickle(marker))
    cases.append(Case("crafted pickles", ".pt legacy pickle", compile_(work / "evil_legacy.pt", "--input-shape",
                                                                       "1,3,8,8"), "evil_legacy.pt", marker=marker))

    tfl = tiny_tflite(work / "ok.tflite")
    for damage, (mutate, expect) in TFLITE_DAMAGE.items():
        path = tiny_tflite(work / f"crafted_{damage.replace(' ', '_')}.tflite", mutate)
        cases.append(Case("crafted flatbuffers", damage, ["inspect", path], ("malformed TFLite file: ", expect)))
    data = tfl.read_bytes()
    for how, blob in (("truncated", data[: len(data) // 2]), ("random", os.urandom(len(data)))):
        (work / f"{how}.tflite").write_bytes(blob)
        cases.append(Case("crafted flatbuffers", f"{how} .tflite", ["inspect", work / f"{how}.tflite"], "TFLite"))
        cases.append(Case("damaged artifacts", f"bench {how} .tflite", ["bench", work / f"{how}.tflite", "-n", "2"],
                          f"{how}.tflite"))

    for name, (source, expect) in calibration_files(work / "calib").items():
        cases.append(Case("calibration data", name, ["compile", good["onnx"], "-t", "x86_64-int8", "--calib",
                                                      source, "-o", out], expect))

    (work / "afile").write_text("x")
    cases += [
        Case("output paths", "-o is a file", compile_(good["onnx"])[:-1] + [work / "afile"], "cannot write to"),
        Case("output paths", "-o is the model", compile_(good["onnx"])[:-1] + [good["onnx"]], "the model file itself"),
        Case("output paths", "-o under a file", compile_(good["onnx"])[:-1] + [work / "afile" / "x"], "is a file"),
        Case("output paths", "-o unwritable", compile_(good["onnx"])[:-1] + [unwritable_folder()], "cannot write to"),
        Case("output paths", "--name ../x", compile_(good["onnx"], "--name", "../x"), "cannot write to --name '../x'"),
        Case("output paths", "--name a/b", compile_(good["onnx"], "--name", "a/b"), "--name 'a/b'"),
        Case("output paths", "--name .hidden", compile_(good["onnx"], "--name", ".hidden"), "--name '.hidden'"),
    ]

    m = good["onnx"]
    cases += [
        Case("flags", "--tagret", ["compile", m, "--tagret", "x"], "No such option: --tagret", usage=True),
        Case("flags", "--samples 0", compile_(m, "--samples", "0"), "--samples", usage=True),
        Case("flags", "--calib-limit 0", ["compile", m, "-t", "x86_64-int8", "--calib", "random", "--calib-limit",
                                          "0", "-o", out], "--calib-limit", usage=True),
        Case("flags", "--calib-percentile 150", ["compile", m, "-t", "x86_64-int8", "--calib", "random",
                                                 "--calib-percentile", "150", "-o", out], "(0, 100]"),
        Case("flags", "--calib-method bogus", ["compile", m, "-t", "x86_64-int8", "--calib", "random",
                                               "--calib-method", "bogus", "-o", out], "--calib-method 'bogus'"),
        Case("flags", "--calib on a float target", compile_(m, "--calib", "random"), "is a float target"),
        Case("flags", "--input-shape 1,x", compile_(m, "--input-shape", "1,x"), "--input-shape '1,x'"),
        Case("flags", "--input-shape 0,3", compile_(m, "--input-shape", "0,3"), "positive integer"),
        Case("flags", "--format onnx", compile_(m, "--format", "onnx"), "--format 'onnx'"),
        Case("flags", "unknown target", ["compile", m, "-t", "arm64-fp3", "-o", out], "unknown target 'arm64-fp3'"),
        Case("flags", "--io int16", ["compile", m, "-t", "x86_64-int8", "--calib", "random", "--io", "int16", "-o",
                                     out], "--io 'int16'"),
        Case("flags", "bench --runs many", ["bench", tfl, "--runs", "many"], "--runs", usage=True),
    ]

    proto = onnx.load(str(m))
    onnx.save(proto, str(work / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    for label, location in (("external data missing", "missing.data"), ("external data outside", "../x.data"),
                            ("external data absolute", "/etc/hostname")):
        proto = onnx.load(str(work / "ext.onnx"), load_external_data=False)
        for entry in proto.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        path = work / f"{label.replace(' ', '_')}.onnx"
        onnx.save(proto, str(path))
        cases.append(Case("ONNX edge cases", label, compile_(path), "tensor name: conv.weight"))
    tiny_onnx(work / "zero.onnx", input_shape=(1, 0, 8, 8))
    cases.append(Case("ONNX edge cases", "0-sized input", compile_(work / "zero.onnx"), "input 'x' has a 0-sized"))
    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    weight[1, 1, 1, 1] = np.inf
    tiny_onnx(work / "infw.onnx", weight=weight)
    cases.append(Case("ONNX edge cases", "Inf weight, int8 target", ["compile", work / "infw.onnx", "-t", "x86_64-int8",
                                                                     "--calib", "random", "-o", out],
                      "weight 'conv.weight'"))
    cases += [Case("TorchScript shapes", "wrong channels", compile_(good["pt"], "--input-shape", "1,5,8,8"),
                   "input 'x' [1, 5, 8, 8]"),
              Case("TorchScript shapes", "wrong rank", compile_(good["pt"], "--input-shape", "1,3"), "input 'x' [1, 3]")]

    lib = next(p for p in ("/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6",
                           "/usr/lib/aarch64-linux-gnu/libm.so.6") if os.path.exists(p))
    data = Path(lib).read_bytes()
    (work / "cut.so").write_bytes(data[: len(data) // 3])
    (work / "cut.so.json").write_text('{"function": "main", "inputs": [], "outputs": []}')
    cases.append(Case("damaged artifacts", "bench truncated .so", ["bench", work / "cut.so", "-n", "2"],
                      "the library is corrupt or truncated"))

    slow_model = ["compile", "zoo:mlp?layers=4&hidden=512", "-t", "x86_64-fp32", "--format", "tvm", "-o", out]
    cases += [Case("signals", "SIGINT mid-lowering", slow_model, "interrupted", code=130, signal=signal.SIGINT),
              Case("signals", "SIGTERM mid-lowering", slow_model, "interrupted", code=143, signal=signal.SIGTERM)]
    return cases


def run_case(case: Case, work: Path, slot: int = 0) -> tuple[bool, str]:
    out = work / f"out{slot}"  # each parallel case its own output folder
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    (out / "earlier.x86_64-fp32.tflite").write_bytes(b"an earlier artifact")
    before = snapshot(out)
    args = [str(out) if str(a) == str(work / "out") else str(a) for a in case.args]
    if case.signal is None:
        proc = subprocess.run([*EDGEC, *args], capture_output=True, text=True, timeout=600, cwd=work)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    else:
        proc = subprocess.Popen([*EDGEC, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work)
        t0 = time.time()
        while not any(p.is_dir() for p in out.glob(".*")) and proc.poll() is None and time.time() - t0 < 300:
            time.sleep(0.05)
        time.sleep(0.3)
        sent = time.time()
        proc.send_signal(case.signal)
        stdout, stderr = proc.communicate(timeout=60)
        code = proc.returncode
        if time.time() - sent > 2:
            return False, f"took {time.time() - sent:.1f} s to stop"
    problems = []
    words = case.expect if isinstance(case.expect, tuple) else (case.expect,)
    if code != case.code:
        problems.append(f"exit {code}, expected {case.code}")
    if "Traceback" in stderr or "Traceback" in stdout:
        problems.append("traceback")
    if case.usage:
        if "Usage: edgec" not in stderr or not all(w in stderr for w in words):
            problems.append("no usage message")
    elif case.signal is not None:
        if not all(w in stderr for w in words):
            problems.append("no 'interrupted'")
    else:
        lines = error_lines(stderr)
        if len(lines) != 1 or not all(w in lines[0] for w in words):
            problems.append(f"message {lines or stderr[-200:]!r}")
    if snapshot(out) != before:
        problems.append("output folder changed")
    if case.marker is not None and case.marker.exists():
        problems.append("PAYLOAD RAN")
    message = (error_lines(stderr) or [stderr.strip().splitlines()[-1] if stderr.strip() else ""])[0]
    return not problems, "; ".join(problems) or message


def survey(work: Path | None = None, log=print, families: list[str] | None = None,
           jobs: int = 1) -> list[tuple[Case, bool, str]]:
    """Run the cases (of `families`, default all), `jobs` at a time; signal cases run alone last."""
    from concurrent.futures import ThreadPoolExecutor

    work = Path(work or tempfile.mkdtemp(prefix="edgec-survey-"))
    cases = [c for c in build_cases(work) if not families or c.family in families]
    results = []

    def one(indexed):
        i, case = indexed
        clear, detail = run_case(case, work, slot=i)
        log(f"{'clear' if clear else 'NOT CLEAR':9} {case.family} / {case.name}: {detail[:160]}")
        return case, clear, detail

    quiet = [(i, c) for i, c in enumerate(cases) if c.signal is None]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results += list(pool.map(one, quiet))
    results += [one((i, c)) for i, c in enumerate(cases) if c.signal is not None]
    return results


def table(results) -> str:
    families: dict[str, list[bool]] = {}
    for case, clear, _ in results:
        families.setdefault(case.family, []).append(clear)
    rows = ["| family | cases | clear |", "|---|---|---|"]
    rows += [f"| {f} | {len(v)} | {sum(v)} |" for f, v in families.items()]
    rows.append(f"| all | {len(results)} | {sum(c for _, c, _ in results)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the bad-input survey through the edgec command")
    parser.add_argument("--family", action="append", help="only this family (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at a time")
    args = parser.parse_args()
    print(table(survey(families=args.family, jobs=args.jobs, log=lambda m: print(m, flush=True))))
