"""ONNX's own backend node tests, run through edgec's TFLite and TVM lowerings (fp32).

Each onnx node test is a one-op model (or a function-expanded chain) with inputs and the
outputs the ONNX reference computes. For every test whose ops the TFLite lowering registry
claims, this compiles the model for x86_64-fp32 (the target's pass recipe, then the
lowering: no CLI, no verification step) and compares the artifact's outputs with onnx's.
A case ends one of three ways:

    passed    every output matches (onnx's per-test rtol/atol; atol floored for fp32 kernels)
    refused   an EdgecError naming the node's op and saying why (what a user would see)
    failed    a crash (any other exception), a refusal naming no op, or a wrong number

The table by op goes to benchmarks/results/onnx_node_conformance.json:

    .venv/bin/python benchmarks/onnx_node_conformance.py [--formats tflite,tvm] [--ops Conv,Resize]

How the test models are adapted (the rules a real exported model already follows):
- integer inputs (shapes, axes, indices, sizes) become constants: the fp32 lowerings take
  float32 signature tensors, and TFLite needs shapes static;
- float inputs in parameter slots (conv weights and bias, normalization scale/bias, Clip's
  bounds, Resize's scales, ...) become constants, as in a model with trained weights;
- every other float input stays a run-time input.

The onnx wheel on this machine does not ship the generated data folder
(onnx/backend/test/data/node); the tests are then generated once from onnx's own case
definitions (onnx.backend.test.case.node, about 20 s) into .cache/onnx-node-tests/<onnx version>/.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import io
import json
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edgec.onnx_walk import all_nodes

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "onnx-node-tests" / onnx.__version__
RESULTS = REPO / "benchmarks" / "results" / "onnx_node_conformance.json"
TARGET = "x86_64-fp32"

# Input slots that hold trained parameters (weights, biases, statistics) or attributes-as-
# inputs in an exported model; a graph input feeding one becomes a constant.
PARAMETER_SLOTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (1, 2),
    "BatchNormalization": (1, 2, 3, 4),
    "InstanceNormalization": (1, 2),
    "GroupNormalization": (1, 2),
    "LayerNormalization": (1, 2),
    "PRelu": (1,),
    "Clip": (1, 2),
    "Resize": (1, 2, 3),
    "Pad": (1, 2, 3),
}

# fp32 kernels (XNNPACK, LLVM) reassociate sums: onnx's default atol of 1e-7 is below that noise.
ATOL_FLOOR = 1e-5
# Per-case status values.
PASSED, REFUSED, FAILED = "passed", "refused", "failed"


@dataclasses.dataclass
class NodeTest:
    name: str
    folder: Path
    ops: frozenset[str]  # every op type in the model, subgraphs included
    op: str  # the op the test is about (an expanded test's function op)
    fp32: bool  # every output a float32 tensor, every input float32 or integer (frozen)
    rtol: float = 1e-3
    atol: float = 1e-7

    def model(self) -> onnx.ModelProto:
        return onnx.load(self.folder / "model.onnx")

    def data_sets(self) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
        sets = []
        for folder in sorted(self.folder.glob("test_data_set_*")):
            sets.append((_read_tensors(folder, "input"), _read_tensors(folder, "output")))
        return sets


@dataclasses.dataclass
class Outcome:
    status: str
    detail: str = ""


# --- the tests ------------------------------------------------------------------------------------


def node_tests() -> list[NodeTest]:
    """Every onnx backend node test, from the wheel's data folder or the generated cache."""
    shipped = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
    root = shipped if shipped.is_dir() and any(shipped.iterdir()) else _generated_cache()
    tolerances = _read_tolerances(root)
    tests = {}
    for folder in sorted(p for p in root.iterdir() if (p / "model.onnx").is_file()):
        model = onnx.load(folder / "model.onnx", load_external_data=False)
        ops = frozenset(n.op_type for n in all_nodes(model.graph))
        tests[folder.name] = NodeTest(folder.name, folder, ops, "", _is_fp32(model.graph),
                                      *tolerances.get(folder.name, (1e-3, 1e-7)))
    for test in tests.values():
        # test_x_expanded / test_x_expanded_ver18 are about the op of test_x.
        base = tests.get(re.sub(r"_expanded(_ver\d+)?$", "", test.name))
        source = base if base is not None and len(base.ops) == 1 else test
        test.op = next(iter(source.ops)) if len(source.ops) == 1 else _first_op(source)
    return list(tests.values())


def claimed_tests(claimed: set[str], tests: list[NodeTest] | None = None) -> list[NodeTest]:
    """The tests whose every op is in `claimed` (ops without their own lowering are not tested)."""
    return [t for t in (tests if tests is not None else node_tests()) if t.ops and t.ops <= claimed]


def tflite_claimed_ops() -> set[str]:
    from edgec.lower.tflite.registry import VISITORS

    return set(VISITORS)


def _generated_cache() -> Path:
    done = CACHE / ".complete"
    if done.is_file():
        return CACHE
    from onnx.backend.test.case import node as node_cases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases()
    tmp = Path(tempfile.mkdtemp(prefix=".partial.", dir=_mkdir(CACHE.parent)))
    tolerances = {}
    for case in cases:
        folder = _mkdir(tmp / case.name)
        (folder / "model.onnx").write_bytes(case.model.SerializeToString())
        tolerances[case.name] = (case.rtol, case.atol)
        for i, (inputs, outputs) in enumerate(case.data_sets):
            data = _mkdir(folder / f"test_data_set_{i}")
            for kind, arrays, values in (("input", inputs, case.model.graph.input),
                                         ("output", outputs, case.model.graph.output)):
                for j, (array, value) in enumerate(zip(arrays, values)):
                    if not value.type.HasField("tensor_type"):
                        continue  # sequences/maps/optionals: no tensor to compare (not claimed ops)
                    tensor = array if isinstance(array, onnx.TensorProto) else numpy_helper.from_array(
                        np.asarray(array), value.name)
                    (data / f"{kind}_{j}.pb").write_bytes(tensor.SerializeToString())
    (tmp / "tolerances.json").write_text(json.dumps(tolerances))
    if CACHE.exists():  # another process generated it meanwhile
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(CACHE)
    done.write_text(onnx.__version__)
    return CACHE


def _read_tolerances(root: Path) -> dict[str, tuple[float, float]]:
    path = root / "tolerances.json"
    return {k: tuple(v) for k, v in json.loads(path.read_text()).items()} if path.is_file() else {}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_tensors(folder: Path, kind: str) -> list[np.ndarray]:
    files = sorted(folder.glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    arrays = []
    for path in files:
        tensor = onnx.TensorProto()
        tensor.ParseFromString(path.read_bytes())
        arrays.append(numpy_helper.to_array(tensor))
    return arrays




def _is_fp32(graph: onnx.GraphProto) -> bool:
    def elem(value):
        return value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else None

    integer = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
    return (all(elem(v) == onnx.TensorProto.FLOAT for v in graph.output)
            and all(elem(v) == onnx.TensorProto.FLOAT or elem(v) in integer for v in graph.input))


def _first_op(test: NodeTest) -> str:
    model = test.model()
    return model.graph.node[0].op_type if model.graph.node else "?"


# --- adapting a test model ------------------------------------------------------------------------


def frozen_model(model: onnx.ModelProto, inputs: list[np.ndarray]) -> tuple[onnx.ModelProto, list[np.ndarray]]:
    """The test model with integer and parameter inputs as initializers, and the inputs left."""
    graph = model.graph
    by_name = dict(zip((v.name for v in graph.input), inputs))
    parameters = {name for n in graph.node for i, name in enumerate(n.input)
                  if name and i in PARAMETER_SLOTS.get(n.op_type, ())}
    frozen, kept = [], []
    for value in graph.input:
        array = by_name.get(value.name)
        if array is None:
            continue
        if array.dtype != np.float32 or value.name in parameters:
            frozen.append(numpy_helper.from_array(array, value.name))
        else:
            kept.append((value, array))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.input[:]
    out.graph.input.extend(v for v, _ in kept)
    out.graph.initializer.extend(frozen)
    return out, [a for _, a in kept]


def _prepared(test: NodeTest, data_set: int = 0):
    """(onnx_ir model after the target's passes, run-time inputs, expected outputs)."""
    from edgec.frontends.onnx_file import model_from_bytes
    from edgec.passes import run_passes
    from edgec.targets import get_target

    inputs, expected = test.data_sets()[data_set]
    proto, inputs = frozen_model(test.model(), inputs)
    model = model_from_bytes(proto.SerializeToString(), test.name)  # as `edgec compile` reads a file
    model, _ = run_passes(model, list(get_target(TARGET).passes))
    return model, inputs, expected


# --- running a case ------------------------------------------------------------------------------


def run_case(test: NodeTest, fmt: str, workdir: Path) -> Outcome:
    """Compile `test` for x86_64-fp32 in format `fmt` ("tflite" or "tvm") and check its outputs."""
    from edgec.errors import EdgecError

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = []
            for index in range(len(test.data_sets())):
                model, inputs, expected = _prepared(test, index)
                outputs = (_run_tflite if fmt == "tflite" else _run_tvm)(model, inputs, workdir / f"{index}")
                results.append(compare(outputs, expected, test.rtol, test.atol))
    except EdgecError as exc:
        message = " ".join(str(exc).split())
        if test.fp32 and not _names_the_op(exc, test):
            return Outcome(FAILED, f"refused without naming the op: {message}")
        return Outcome(REFUSED, message)
    except Exception as exc:  # noqa: BLE001 - a crash is what this harness exists to find
        return Outcome(FAILED, f"crash: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}")
    wrong = [r for r in results if r]
    return Outcome(FAILED, wrong[0]) if wrong else Outcome(PASSED)


def _names_the_op(exc: Exception, test: NodeTest) -> bool:
    """A refusal of a float32 case must say which node (of which op) it cannot take, and why."""
    from edgec.errors import UnsupportedOpsError

    if isinstance(exc, UnsupportedOpsError):
        return bool(exc.nodes) and all(name and why and (op in test.ops or op in ("graph input", "graph output"))
                                       for name, op, why in exc.nodes)
    return any(op in str(exc) for op in test.ops)


def compare(outputs: list[np.ndarray], expected: list[np.ndarray], rtol: float, atol: float) -> str:
    """Why `outputs` differ from `expected` (shape, dtype, or values), or "" when they match."""
    if len(outputs) != len(expected):
        return f"wrong number: {len(outputs)} outputs, expected {len(expected)}"
    for i, (got, want) in enumerate(zip(outputs, expected)):
        got = np.asarray(got)
        if got.shape != want.shape:
            return f"wrong number: output {i} has shape {list(got.shape)}, expected {list(want.shape)}"
        if got.dtype != want.dtype:
            return f"wrong number: output {i} is {got.dtype}, expected {want.dtype}"
        tol = max(atol, ATOL_FLOOR)
        if not np.allclose(got, want, rtol=rtol, atol=tol, equal_nan=True):
            err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
            return f"wrong number: output {i} differs by up to {err:.3g} (rtol {rtol}, atol {tol})"
    return ""


def _run_tflite(model, inputs, workdir: Path) -> list[np.ndarray]:
    from edgec.lower.tflite import lower_tflite
    from edgec.runtimes.litert import LiteRTRuntime
    from edgec.targets import get_target

    path = _mkdir(workdir) / "model.tflite"
    lower_tflite(model, get_target(TARGET), path)
    return LiteRTRuntime(path).run(inputs)


def _run_tvm(model, inputs, workdir: Path) -> list[np.ndarray]:
    from edgec.lower.tvm import lower_tvm
    from edgec.runtimes.tvmrt import TVMRuntime
    from edgec.targets import get_target

    path = _mkdir(workdir) / "model.so"
    lower_tvm(model, get_target(TARGET), path)
    return TVMRuntime(path).run(inputs)


# --- the table ------------------------------------------------------------------------------------


def table(outcomes: dict[str, dict[str, Outcome]], tests: list[NodeTest]) -> dict:
    """Per format, by op: cases/passed/refused/failed over the float32 cases (what an fp32
    target claims), the other-dtype cases apart (int, float16/64, bool: refused by name
    unless they crash), and each non-pass's reason."""
    by_name = {t.name: t for t in tests}
    keys = ("cases", PASSED, REFUSED, FAILED)
    result = {}
    for fmt, per_case in outcomes.items():
        ops: dict[str, dict] = collections.defaultdict(lambda: {
            **{k: 0 for k in keys}, "other_dtype": {k: 0 for k in keys}, "not_passed": {}})
        for name, outcome in sorted(per_case.items()):
            test = by_name[name]
            row = ops[test.op]
            counts = row if test.fp32 else row["other_dtype"]
            counts["cases"] += 1
            counts[outcome.status] += 1
            if outcome.status != PASSED:
                row["not_passed"][name] = f"{outcome.status}: {outcome.detail}"
        totals = {k: sum(r[k] for r in ops.values()) for k in keys}
        totals["pass_rate"] = totals[PASSED] / max(totals["cases"], 1)
        totals["other_dtype"] = {k: sum(r["other_dtype"][k] for r in ops.values()) for k in keys}
        result[fmt] = {"totals": totals, "ops": dict(sorted(ops.items()))}
    return result


def format_table(summary: dict) -> str:
    lines = []
    for fmt, data in summary.items():
        t, o = data["totals"], data["totals"]["other_dtype"]
        lines.append(f"{fmt}: float32 cases {t['passed']}/{t['cases']} passed ({100 * t['pass_rate']:.1f}%), "
                     f"{t['refused']} refused by name, {t['failed']} failed; other dtypes: {o['cases']} cases, "
                     f"{o['passed']} passed, {o['refused']} refused, {o['failed']} failed")
        lines.append(f"  {'op':<24}{'cases':>6}{'passed':>8}{'refused':>9}{'failed':>8}{'other-dtype':>13}")
        for op, row in data["ops"].items():
            other = row["other_dtype"]
            extra = f"{other['cases']} ({other['failed']} failed)" if other["cases"] else ""
            lines.append(f"  {op:<24}{row['cases']:>6}{row['passed']:>8}{row['refused']:>9}{row['failed']:>8}"
                         f"{extra:>13}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--formats", default="tflite,tvm")
    ap.add_argument("--ops", default="", help="only tests about these ops (comma-separated)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    tests = claimed_tests(tflite_claimed_ops())
    if args.ops:
        tests = [t for t in tests if t.op in args.ops.split(",")]
    outcomes: dict[str, dict[str, Outcome]] = {}
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            started = time.perf_counter()
            outcomes[fmt] = {}
            for test in tests:
                outcomes[fmt][test.name] = outcome = run_case(test, fmt, Path(tmp) / fmt / test.name)
                if outcome.status != PASSED:
                    print(f"{fmt} {test.name}: {outcome.status}: {outcome.detail[:200]}", file=sys.stderr)
            seconds[fmt] = time.perf_counter() - started
    summary = table(outcomes, tests)
    print(format_table(summary))
    report = {"onnx": onnx.__version__, "target": TARGET, "claimed_ops": sorted(tflite_claimed_ops()),
              "seconds": seconds, "formats": summary,
              "command": "python benchmarks/onnx_node_conformance.py " + " ".join(argv or sys.argv[1:])}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
