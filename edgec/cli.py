"""The `edgec` command line.

Every EdgecError becomes one 'error: ...' message on stderr and a non-zero exit, without a
traceback; a traceback means a bug in edgec.
"""

from __future__ import annotations

import json
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
    no_verify: bool = typer.Option(False, "--no-verify", help="skip running the artifacts against the float reference"),
    samples: int = typer.Option(4, "--samples", min=1, help="sample inputs used for verification"),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="allow unpickling a full-module .pt (runs code from the file)"),
    name: Optional[str] = typer.Option(None, "--name", help="artifact file stem (default: the model's name)"),
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
                            verify=not no_verify, samples=samples, allow_pickle=trust_pickle, name=name,
                            devices=devices, log=lambda msg: status.update(msg))
    if as_json:
        out.print_json(art.report_path.read_text())
        return
    _print_compile_summary(art)


def _print_compile_summary(art) -> None:
    rep = art.report
    table = Table(title=f"{rep['source']['name']} -> {rep['target']['name']}", title_justify="left")
    for col in ("artifact", "size", "ran on", "max rel err", "SQNR dB", "top-1 agree", "XNNPACK"):
        table.add_column(col)
    ver = rep["verification"].get("artifacts", {}) if isinstance(rep["verification"], dict) else {}
    for a in rep["artifacts"]:
        v = ver.get(a["format"], {})
        figs = v.get("vs_onnxruntime", {})
        x = v.get("xnnpack")
        table.add_row(
            a["path"], f"{a['size_bytes'] / 1024:.1f} KiB",
            v.get("runtime", "-") if v.get("ran") else ("not run: " + v.get("why", "--no-verify")),
            _fmt_float(figs.get("max_rel_error", "-"), ".2e"), _fmt_float(figs.get("sqnr_db", "-"), ".1f"),
            _fmt_float(figs.get("top1_agreement", "-"), ".3f"),
            f"{x['delegated']}/{x['nodes']} ops" if x else "-",
        )
    out.print(table)
    out.print(f"report: {art.report_path}  ({rep['timings']['total_s']:.1f} s)")


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
def zoo():
    """List the bundled model architectures (compile them as zoo:NAME)."""
    from edgec import zoo as zoo_mod

    table = Table("name", "input", "description")
    for name in zoo_mod.names():
        info = zoo_mod.describe(name) if hasattr(zoo_mod, "describe") else {}
        table.add_row(f"zoo:{name}", str(info.get("input_shape", "")), info.get("description", ""))
    out.print(table)


def main(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, standalone_mode=False)
    except EdgecError as exc:
        # The message can hold brackets (shapes like [N,3,?,?]): print it as plain text.
        err.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # click's usage errors arrive here in standalone_mode=False
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
