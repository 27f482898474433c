"""The `edgec` command line.

Every EdgecError becomes one 'error: ...' message on stderr and a non-zero exit, without a
traceback; a traceback means a bug in edgec.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgec.errors import EdgecError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compile PyTorch and ONNX models to verified TFLite and Apache TVM artifacts.")
out = Console()
err = Console(stderr=True)



@app.callback()
def _options(debug: bool = typer.Option(False, "--debug", help="on an internal error, print the full traceback "
                                        "(also EDGEC_DEBUG=1); accepted after the command too")):
    """Compile PyTorch and ONNX models to verified TFLite and Apache TVM artifacts."""


DevicesOpt = typer.Option(None, "--devices", help="devices.yaml to use (default: $EDGEC_DEVICES or the bundled one)")


def _fmt_float(value, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


@app.command()
def compile(  # noqa: A001
    model: str = typer.Argument(..., help="model.pt2 | model.pt (TorchScript) | model.onnx | zoo:NAME[?k=v&...]"),
    target: str = typer.Option(..., "--target", "-t", help="target from devices.yaml, e.g. arm64-fp32 (see `edgec targets`)"),
    out_dir: Path = typer.Option(Path("out"), "--out", "-o", help="output folder"),
    input_shape: Optional[List[str]] = typer.Option(None, "--input-shape", help="fix input shapes: 1,3,224,224 or name=1,3,224,224 (repeatable)"),
    formats: Optional[str] = typer.Option(None, "--format", help="comma-separated subset of the target's formats (tflite,tvm)"),
    calib: Optional[str] = typer.Option(None, "--calib", help="calibration data for int8/int4 targets: data.npz | data.npy | images/ | random"),
    calib_method: Optional[str] = typer.Option(None, "--calib-method", help="minmax | percentile | mse | entropy (default: the target's)"),
    calib_percentile: Optional[float] = typer.Option(None, "--calib-percentile", help="for --calib-method percentile, e.g. 99.99"),
    calib_preprocess: Optional[str] = typer.Option(None, "--calib-preprocess", help="for image folders: resize=N,mean=a:b:c,std=a:b:c,scale=255,gray"),
    calib_limit: Optional[int] = typer.Option(None, "--calib-limit", min=1, help="use at most N calibration samples"),
    accuracy_budget: Optional[float] = typer.Option(None, "--accuracy-budget", help="allowed accuracy loss vs float: int4 targets choose int4 layers under it (top-1 agreement points, or dB SQNR), int8 targets keep the most sensitive layers float until within it (top-1 agreement points, or percent relative RMS error)"),
    fallback_precision: str = typer.Option("float", "--fallback-precision", help="int8 targets with --accuracy-budget: float (float islands) or int16 (TFLite 16x8: int16 activations, int8 weights) for the sensitive layers"),
    io: Optional[str] = typer.Option(None, "--io", help="int8: the TFLite artifact takes and returns int8 tensors (integer targets)"),
    no_equalization: bool = typer.Option(False, "--no-equalization", help="skip cross-layer equalization (integer targets)"),
    no_bias_correction: bool = typer.Option(False, "--no-bias-correction", help="skip bias correction (integer targets)"),
    no_verify: bool = typer.Option(False, "--no-verify", help="skip running the artifacts against the float reference"),
    samples: int = typer.Option(4, "--samples", min=1, help="sample inputs used for verification"),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="allow unpickling a full-module .pt, or the pickled parts of a .pt2 (runs code from the file)"),
    name: Optional[str] = typer.Option(None, "--name", help="artifact file stem (default: the model's name)"),
    tuning_db: Optional[Path] = typer.Option(None, "--tuning-db", help="MetaSchedule records from `edgec tune` for this target: tuned TVM kernels use them, the others the default schedule"),
    devices: Optional[Path] = DevicesOpt,
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON instead of a summary"),
):
    """Import, optimize, lower and verify a model for a target."""
    import edgec
    from edgec.frontends.shapes import parse_input_shapes

    shapes = parse_input_shapes(input_shape)
    fmt_list = [f.strip() for f in formats.split(",")] if formats else None
    with err.status("compiling") as status:
        art = edgec.compile(model, target=target, out_dir=out_dir, input_shapes=shapes, formats=fmt_list,
                            calibration=calib, calib_method=calib_method, calib_percentile=calib_percentile,
                            calib_preprocess=calib_preprocess, calib_limit=calib_limit, io=io, accuracy_budget=accuracy_budget,
                            fallback_precision=fallback_precision,
                            equalization=False if no_equalization else None,
                            bias_correction=False if no_bias_correction else None,
                            verify=not no_verify, samples=samples, allow_pickle=trust_pickle, name=name,
                            devices=devices, tuning_db=tuning_db, log=lambda msg: status.update(msg))
    if as_json:
        out.print_json(art.report_path.read_text())
        return
    _print_compile_summary(art)


@app.command()
def tune(
    model: str = typer.Argument(..., help="model.pt2 | model.pt (TorchScript) | model.onnx | zoo:NAME[?k=v&...]"),
    target: str = typer.Option(..., "--target", "-t", help="target from devices.yaml whose TVM kernels to tune"),
    trials: int = typer.Option(..., "--trials", help="measurement budget for all tasks together (e.g. 2000)"),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="wall-time budget; tuning stops after the batch that passes it"),
    db: Optional[Path] = typer.Option(None, "--db", help="tuning database folder (default .cache/edgec/tuning/<target>); `edgec compile --tuning-db` reads it"),
    input_shape: Optional[List[str]] = typer.Option(None, "--input-shape", help="fix input shapes: 1,3,224,224 or name=1,3,224,224 (repeatable)"),
    calib: Optional[str] = typer.Option(None, "--calib", help="calibration data for int8/int4 targets, as for compile"),
    device: Optional[str] = typer.Option(None, "--device", help="rpc board from devices.yaml to measure on (targets for another architecture)"),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="allow unpickling a full-module .pt, or the pickled parts of a .pt2"),
    devices: Optional[Path] = DevicesOpt,
):
    """Tune a model's TVM kernels with MetaSchedule; records go into a database any later compile can read."""
    import edgec
    from edgec.frontends.shapes import parse_input_shapes

    summary = edgec.tune(model, target=target, trials=trials, minutes=minutes, db=db,
                         input_shapes=parse_input_shapes(input_shape), calibration=calib, device=device,
                         allow_pickle=trust_pickle, devices=devices,
                         log=lambda msg: err.print(Text(msg), highlight=False, soft_wrap=True))
    table = Table(title=f"tuned {summary['tuned']}/{summary['tasks']} tasks for {summary['target']} "
                        f"({summary['trials']} trials, {summary['seconds']:.0f} s, stopped by {summary['stopped_by']})",
                  title_justify="left")
    # before: the database's best when this run started; default: edgec's default schedule,
    # measured by this run (a record like any candidate, so best is never slower than it).
    for col in ("task", "calls", "trials", "before (us)", "default (us)", "best (us)"):
        table.add_column(col)
    for r in summary["rows"]:
        us = lambda s: f"{s * 1e6:.1f}" if s is not None else "-"  # noqa: E731
        table.add_row(r["task"], str(r["calls"]), str(r["trials"]), us(r["before_seconds"]),
                      us(r.get("default_seconds")), us(r["best_seconds"]))
    out.print(table)
    out.print(f"records: {summary['db']} (edgec compile ... --target {summary['target']} --tuning-db {summary['db']})",
              soft_wrap=True)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


def _print_compile_summary(art) -> None:
    rep = art.report
    for note in rep["source"].get("notes", []):  # what the import fixed in the file
        out.print(Text(f"note: {note}"), highlight=False)
    table = Table(title=f"{rep['source']['name']} -> {rep['target']['name']}", title_justify="left")
    for col in ("format", "size", "ran on", "max rel err", "SQNR dB", "top-1 agree", "XNNPACK"):
        table.add_column(col, overflow="fold")
    ver = rep["verification"].get("artifacts", {}) if isinstance(rep["verification"], dict) else {}
    for a in rep["artifacts"]:
        v = ver.get(a["format"], {})
        figs = v.get("vs_float", {})
        x = v.get("xnnpack")
        table.add_row(
            a["format"], _size(a["size_bytes"]),
            v.get("runtime", "-") if v.get("ran") else ("not here" if v else "--no-verify"),
            _fmt_float(figs.get("max_rel_error", "-"), ".2e"), _fmt_float(figs.get("sqnr_db", "-"), ".1f"),
            _fmt_float(figs.get("top1_agreement", "-"), ".3f"),
            f"{x['delegated']}/{x['nodes']} ops" if x else "-",
        )
    out.print(table)
    if "quantized_reference" in rep["verification"]:
        q = rep["verification"]["quantized_reference"]["vs_float"]
        out.print(f"quantized reference (onnxruntime QDQ) vs float: SQNR {_fmt_float(q['sqnr_db'], '.1f')} dB, "
                  f"top-1 agreement {_fmt_float(q['top1_agreement'], '.3f')}")
        for fmt, v in ver.items():
            lsb = v.get("vs_qdq", {}).get("lsb_agreement")
            if lsb:
                out.print(f"{fmt} within 1 LSB of the QDQ reference: "
                          + ", ".join(f"{f:.2%}" for f in lsb if f is not None))
    for a in rep["artifacts"]:
        sparse = (a.get("lowering") or {}).get("sparse")
        if sparse:
            out.print(f"sparse: {sparse['summary']}", soft_wrap=True)
    quant = rep.get("quantization") or {}
    if quant.get("accuracy"):
        out.print(f"[yellow]accuracy {quant['accuracy']}[/yellow]")
    for a in rep["artifacts"]:
        out.print(f"{a['format']}: {a['path']}", soft_wrap=True)
    _print_faster_target_hint(art)
    out.print(f"report: {art.report_path}", soft_wrap=True)
    out.print(f"compiled in {rep['timings']['total_s']:.1f} s")


def _print_faster_target_hint(art) -> None:
    """A portable TVM build on a CPU with more (x86_64-fp32 on an AVX-512 host): name the target
    that uses it (MobileNet v2: x86_64-fp32-avx512's default schedules ran 1.6x faster here)."""
    if "tvm" not in art.paths:
        return
    from edgec.runtimes.cpu_features import faster_sibling
    from edgec.targets import load_registry

    sibling = faster_sibling(art.target, load_registry().targets.values())
    if sibling:
        out.print(Text(f"hint: this CPU runs target '{sibling}', whose TVM module uses instructions "
                       f"'{art.target.name}' leaves out for portability (--target {sibling})"), highlight=False, soft_wrap=True)


@app.command()
def inspect(artifact: Path = typer.Argument(..., help=".tflite, .so (TVM) or .onnx file"),
            as_json: bool = typer.Option(False, "--json")):
    """Show an artifact's ops, tensors and sizes."""
    from edgec.inspect_artifact import inspect_artifact

    info = inspect_artifact(artifact)
    if as_json:
        out.print_json(json.dumps(info))
        return
    out.print(f"[bold]{info['path']}[/bold]  {info['format']}  {info['size_bytes'] / 1024:.1f} KiB")
    for key in ("elf_machine", "tvm_target", "opset", "operators", "nodes", "tensors", "weight_bytes"):
        if key in info:
            out.print(f"  {key}: {info[key]}")
    for io in ("inputs", "outputs"):
        for t in info.get(io, []):
            out.print(f"  {io[:-1]} {t.get('name')}: {t.get('shape')} {t.get('dtype', '')}")
    if info.get("ops"):
        table = Table("op", "count")
        for op, n in info["ops"].items():
            table.add_row(op, str(n))
        out.print(table)


@app.command()
def targets(devices: Optional[Path] = DevicesOpt):
    """List the targets devices.yaml offers."""
    from edgec.targets import load_registry

    reg = load_registry(devices)
    table = Table("target", "formats", "passes", "tvm target", "description", title=str(reg.path), title_justify="left")
    for t in reg.targets.values():
        table.add_row(t.name, ",".join(t.formats), " ".join(t.passes), json.dumps(t.tvm_target), t.description)
    out.print(table)


@app.command()
def ops(target: Optional[str] = typer.Option(None, "--target", "-t",
                                             help="a target (its formats and precision) or a format: tflite, tvm"),
        devices: Optional[Path] = DevicesOpt):
    """List every ONNX op and whether each lowering takes it, with its conditions."""
    from edgec.supported_ops import supported_ops

    formats, integer = ("tflite", "tvm"), None
    if target in ("tflite", "tvm"):
        formats = (target,)
    elif target is not None:
        from edgec.targets import get_target

        t = get_target(target, devices)
        formats, integer = tuple(t.formats), t.is_integer
    rows = supported_ops(formats)
    columns = ["op", "opset"]
    if "tflite" in formats:
        columns += [c for c, show in (("TFLite fp32", integer is not True), ("TFLite int8", integer is not False))
                    if show]
    if "tvm" in formats:
        columns.append("TVM")
    table = Table(*columns, title=f"ONNX ops{f' for {target}' if target else ''}", title_justify="left")
    for r in rows:
        cells = [r.op + (" (deprecated)" if r.deprecated else ""), str(r.since)]
        if "TFLite fp32" in columns:
            cells.append(r.tflite.cell())
        if "TFLite int8" in columns:
            cells.append(r.tflite.int8_cell())
        if "tvm" in formats:
            cells.append(r.tvm.cell())
        table.add_row(*(Text(c) for c in cells))
    out.print(table)


@app.command()
def zoo():
    """List the bundled model architectures (compile them as zoo:NAME)."""
    from edgec import zoo as zoo_mod

    table = Table("name", "input", "description")
    for name in zoo_mod.names():
        info = zoo_mod.describe(name) if hasattr(zoo_mod, "describe") else {}
        table.add_row(f"zoo:{name}", str(info.get("input_shape", "")), info.get("description", ""))
    out.print(table)


@app.command()
def bench(
    artifact: Path = typer.Argument(..., help=".tflite, .so (TVM) or .onnx artifact"),
    device: str = typer.Option("host", "--device", "-d", help="device from devices.yaml (see `edgec devices`)"),
    runs: int = typer.Option(50, "--runs", "-n", help="timed runs (samples)"),
    warmup: int = typer.Option(10, "--warmup", help="untimed runs first"),
    threads: Optional[int] = typer.Option(None, "--threads", help="runtime threads (default: the runtime's own)"),
    cpus: Optional[str] = typer.Option(None, "--cpus", help="pin to these host CPUs, e.g. 0-3 (host only)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the result (all samples) to this file"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write a PNG chart (distribution, or the --vs comparison)"),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="a result JSON to compare against (regression gate)"),
    max_regression: Optional[str] = typer.Option(None, "--max-regression", help="allowed slowdown, e.g. 5% (default 5% with --baseline; with --vs, gates only when given)"),
    vs: Optional[Path] = typer.Option(None, "--vs", help="another artifact, timed interleaved with this one (A B A B)"),
    devices: Optional[Path] = DevicesOpt,
):
    """Time an artifact on a device; gate on a baseline or against another artifact.

    Exits 4 when --baseline or --vs shows a slowdown larger than --max-regression whose
    whole 95% interval lies above the limit.
    """
    from edgec.bench import RegressionError, benchmark, benchmark_vs, check_regression, parse_fraction
    from edgec.bench.report import print_result, print_vs

    limit = parse_fraction(max_regression or "5%")
    with err.status("benchmarking") as status:
        log = lambda msg: status.update(msg)  # noqa: E731
        if vs is not None:
            result = benchmark_vs(artifact, vs, device=device, runs=runs, warmup=warmup, threads=threads,
                                  cpus=cpus, devices=devices, log=log)
        else:
            result = benchmark(artifact, device=device, runs=runs, warmup=warmup, threads=threads,
                               cpus=cpus, devices=devices, log=log)
    if vs is not None:
        print_vs(out, result)
    else:
        print_result(out, result)
    if json_out:
        result.save(json_out)
        out.print(f"result: {json_out}", highlight=False)
    if plot:
        from edgec.bench.plots import plot_distribution, plot_vs

        if vs is not None:
            plot_vs(result, plot, max_regression=limit if max_regression else None)
        else:
            plot_distribution([result], plot)
        out.print(f"plot: {plot}", highlight=False)
    regressed = False
    if baseline is not None:
        from edgec.bench.result import BenchResult

        current = result.b if vs is not None else result
        verdict = check_regression(current, BenchResult.load(baseline), limit)
        for warning in verdict.warnings:
            err.print(Text(f"warning: {warning}", style="yellow"), highlight=False)
        out.print(Text(f"vs baseline {baseline}: {verdict.message()}"), highlight=False)
        regressed = verdict.regressed
    elif vs is not None and max_regression:
        lo = result.ratio.ci[0]
        regressed = lo > 1 + limit
        out.print(f"gate: B/A interval lower bound {lo:.3f} {'>' if regressed else '<='} limit {1 + limit:.3f}",
                  highlight=False)
    if regressed:
        raise RegressionError(f"latency regression beyond {limit:.1%} (see the ratio and interval above)")


@app.command(name="devices")
def devices_cmd(devices: Optional[Path] = DevicesOpt):
    """List devices.yaml's devices: which are reachable now and, if not, what to do."""
    from edgec.bench.devices import status
    from edgec.bench.report import print_devices
    from edgec.targets import load_registry

    reg = load_registry(devices)
    print_devices(out, [status(d, reg.path.parent) for d in reg.devices.values()], reg.path)


@app.command()
def analyze(
    artifact: Path = typer.Argument(..., help="a TVM .so built by edgec (its .layers.json beside it)"),
    device: str = typer.Option("host", "--device", "-d", help="where to measure (host)"),
    repeat: int = typer.Option(20, "--repeat", min=1, help="timed runs per kernel"),
    warmup: int = typer.Option(3, "--warmup", min=0, help="untimed runs first"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the report as JSON here"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write the efficiency-gap and roofline PNG here"),
):
    """Per kernel: FLOPs, bytes moved, measured time, efficiency vs this machine's measured peak, roofline bound."""
    from edgec.analyze import analyze as run_analysis

    with err.status("measuring kernels and the machine's peak"):
        report = run_analysis(artifact, device, warmup=warmup, repeat=repeat, json_path=json_out, plot_path=plot)
    machine, totals = report["machine"], report["totals"]
    table = Table(title=(f"{artifact.name} on {device}: peak {machine['gflops_per_s']:.1f} GFLOP/s, "
                         f"{machine['gbytes_per_s']:.1f} GB/s, {machine['threads']} thread(s)"), title_justify="left")
    for col in ("#", "kernel", "MFLOP", "KiB", "ms", "GFLOP/s", "eff", "FLOP/B", "bound"):
        table.add_column(col, justify="left" if col == "kernel" else "right", overflow="fold",
                         min_width=24 if col == "kernel" else None)
    for r in report["layers"]:
        table.add_row(str(r["index"]), r["name"], f"{r['flops'] / 1e6:.2f}", f"{r['bytes'] / 1024:.1f}",
                      f"{r['time_ms']:.3f}", f"{r['gflops_per_s']:.2f}", f"{r['efficiency']:.1%}",
                      f"{r['flops_per_byte']:.1f}", r["bound"])
    out.print(table)
    out.print(f"model {totals['model_ms']:.3f} ms, {totals['flops'] / 1e6:.1f} MFLOP, {totals['gflops_per_s']:.2f} "
              f"GFLOP/s = {totals['efficiency']:.1%} of peak; {totals['fused_blocks']} fused block(s); "
              f"{totals['memory_bound_time_share']:.0%} of kernel time in memory-bound kernels")
    for path in (json_out, plot):
        if path is not None:
            out.print(f"wrote {path}")


@app.command()
def sensitivity(
    model: str = typer.Argument(..., help="model.pt2 | model.pt (TorchScript) | model.onnx | zoo:NAME[?k=v&...]"),
    calib: str = typer.Option(..., "--calib", help="calibration data: data.npz | data.npy | images/ | random"),
    input_shape: Optional[List[str]] = typer.Option(None, "--input-shape"),
    samples: int = typer.Option(32, "--samples", min=1, help="calibration samples the error is measured on"),
    as_json: Optional[Path] = typer.Option(None, "--json", help="write the table as JSON here"),
):
    """Per weight layer: the output error when that layer alone gets int4 weights (others int8)."""
    from edgec.frontends import load_model
    from edgec.frontends.shapes import parse_input_shapes
    from edgec.passes import fix_input_shapes, run_passes
    from edgec.quantization.calibration import collect_statistics, load_calibration
    from edgec.quantization.sensitivity import sensitivity as measure
    from edgec.targets import get_target

    shapes = parse_input_shapes(input_shape)
    with err.status("measuring per-layer sensitivity") as status:
        imported = load_model(model, input_shapes=shapes)
        graph = fix_input_shapes(imported.model, shapes)
        graph, _ = run_passes(graph, list(get_target("x86_64-int8").passes))
        data = load_calibration(calib, graph)
        stats = collect_statistics(graph, data)
        base, rows = measure(graph, data, stats, samples,
                             progress=lambda phase, done, total: status.update(f"{phase} {done}/{total}"))
    table = Table("rank", "layer", "op", "params", "SQNR dB, this layer int4", "drop dB", "top-1 agree",
                  title=f"all int8: SQNR {base['sqnr_db']:.1f} dB", title_justify="left")
    for i, r in enumerate(rows, 1):
        table.add_row(str(i), r.node, r.op, str(r.parameters), f"{r.sqnr_db:.1f}", f"{r.sqnr_drop_db:.1f}",
                      _fmt_float(r.top1_agreement, ".3f"))
    out.print(table)
    if as_json:
        as_json.write_text(json.dumps({"int8": base, "layers": [r.as_dict() for r in rows]}, indent=2))


@app.command()
def prune(
    model: str = typer.Argument(..., help="model.pt2 (torch.export ExportedProgram), model.onnx, or zoo:NAME[?k=v&...] "
                                          "(written as .pt2)"),
    sparsity: float = typer.Option(..., "--sparsity", "-s", help="fraction of each layer's weights to zero, e.g. 0.9"),
    block: str = typer.Option("1x1", "--block", "-b", help="1x1 (unstructured) | 2x1 | 4x1 output-channel blocks; "
                              "4x1 runs fastest on ARM, 1x1 on WebAssembly"),
    output: Path = typer.Option(..., "--out", "-o", help="where to write the pruned model (same format)"),
    fc: bool = typer.Option(True, "--fc/--no-fc", help="also prune fully connected layers"),
    as_json: Optional[Path] = typer.Option(None, "--json", help="write the per-layer table as JSON here"),
):
    """One-shot magnitude pruning of 1x1 conv (and FC) weights; the first conv and depthwise stay dense.

    Then compile for a sparse target: edgec compile pruned.pt2 --target wasm-sparse
    """
    from edgec.training.pruning import prune_file

    shown = model if model.startswith("zoo:") else Path(model).name
    with err.status(f"pruning {shown}"):
        result = prune_file(model, output, sparsity=sparsity, block=block, fc=fc)
    table = Table("layer", "op", "shape [out, in]", "zeros", "sparsity",
                  title=f"{shown} -> {output}: {result['zero_fraction']:.1%} of pruned weights zero "
                        f"({result['block']} blocks)", title_justify="left")
    for layer in result["layers"]:
        table.add_row(layer["node"], layer["op"], "x".join(map(str, layer["shape"])), str(layer["zeros"]),
                      f"{layer['sparsity']:.1%}")
    out.print(table)
    by_reason: dict[str, list[str]] = {}
    for skipped in result["skipped"]:
        by_reason.setdefault(skipped["reason"], []).append(skipped["name"])
    for reason, names in by_reason.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        out.print(Text(f"left dense: {shown}: {reason}"), highlight=False)
    if as_json:
        as_json.write_text(json.dumps(result, indent=2))
    out.print(f"wrote {output}", highlight=False)


def main(argv: list[str] | None = None) -> int:
    """The `edgec` entry point. As the command (argv from sys.argv) it supervises: the command runs
    in a worker process it can always stop (edgec.supervise). main(argv) from Python code runs the
    command in the calling process.

    `--debug` (anywhere) or EDGEC_DEBUG=1 shows the full traceback of an internal error.
    """
    from edgec import supervise

    in_process = argv is not None
    argv = list(sys.argv[1:] if argv is None else argv)
    env = {}
    if "--debug" in argv:
        argv = [a for a in argv if a != "--debug"]
        env["EDGEC_DEBUG"] = "1"
    if in_process or supervise.is_worker() or not _needs_worker(argv):
        return run_command(argv, debug=bool(env) or _debug_env())
    return supervise.run_supervised(argv, env)


def _needs_worker(argv: list[str]) -> bool:
    """Commands that import torch/TVM or run long get a worker; help and listings run here."""
    words = [a for a in argv if not a.startswith("-")]
    return bool(words) and words[0] in ("compile", "tune", "bench", "analyze", "sensitivity", "prune", "inspect") \
        and not any(a in ("--help", "-h") for a in argv)


def _debug_env() -> bool:
    return os.environ.get("EDGEC_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def run_command(argv: list[str], debug: bool = False) -> int:
    """Run one command in this process; every failure becomes one line on stderr and an exit code."""
    from typer._click.exceptions import ClickException

    from edgec import supervise

    if supervise.is_worker():
        supervise.prepare_worker()
    try:
        code = app(args=argv, prog_name="edgec", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except EdgecError as exc:
        # The message can hold brackets (shapes like [N,3,?,?]): print it as plain text.
        err.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False, soft_wrap=True)
        return exc.exit_code
    except ClickException as exc:  # usage errors: typer's own message and exit code (2)
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
        return exc.exit_code
    except typer.Abort:
        err.print("aborted")
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # a bug in edgec or a library: one line, the traceback in a file
        if debug:
            raise
        err.print(Text("error: ", style="bold red") + Text(_internal_error(exc, argv)), highlight=False,
                  soft_wrap=True)
        return 1


def _internal_error(exc: BaseException, argv: list[str]) -> str:
    """'internal error: WHAT at WHERE; traceback saved to FILE' and the traceback written there."""
    import datetime
    import tempfile
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f"{os.sep}edgec{os.sep}" in f.filename] or frames
    where = ""
    if ours:
        parts = Path(ours[-1].filename).parts
        short = "/".join(parts[len(parts) - 1 - parts[::-1].index("edgec"):]) if "edgec" in parts else parts[-1]
        where = f" in {short}:{ours[-1].lineno} ({ours[-1].name})"
    text = f"edgec {' '.join(argv)}\n" + "".join(traceback.format_exception(exc))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    saved = None
    for folder in (os.environ.get("EDGEC_LOG_DIR"), Path.home() / ".cache" / "edgec", tempfile.gettempdir()):
        if not folder:
            continue
        try:
            path = Path(folder) / f"crash-{stamp}-{os.getpid()}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            saved = path
            break
        except OSError:
            continue
    what = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    saved_text = f"; full traceback in {saved}" if saved else ""
    return (f"internal error: {type(exc).__name__}{': ' + what if what else ''}{where}{saved_text} "
            "(rerun with --debug to print it). This is a bug in edgec; please report it")


if __name__ == "__main__":
    sys.exit(main())
