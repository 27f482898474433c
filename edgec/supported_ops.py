"""The supported-ops table: every ONNX op, and whether (and when) each lowering takes it.

Generated, never written by hand: the TFLite column reads the visitor registry
(edgec/lower/tflite/registry.py: a visitor's `check` docstring is its condition text, its
`dtypes` the run-time element types it takes), the TVM column reads Apache TVM's Relax ONNX
converter map plus edgec's own pre-import checks (edgec/lower/tvm/op_checks.py). A visitor
registered anywhere shows up here without touching this module.

`edgec ops [--target T]` prints it; scripts/generate_supported_ops.py writes
docs/supported-ops.md, and a test keeps the committed file equal to the generated one.
"""

from __future__ import annotations

import dataclasses

import onnx.defs

# Every node, whatever its op, is held to these before its own conditions apply.
TFLITE_GENERAL = ("every tensor has a static shape (pass --input-shape); inputs that a visitor needs as "
                  "constants (shapes, axes, pads, indices unless stated) must be constants after folding")
TVM_GENERAL = ("static input shapes; the op is converted by Apache TVM's Relax ONNX frontend at the model's opset "
               "(edgec converts models to its opset first); a converter that fails names the node")


@dataclasses.dataclass(frozen=True)
class Support:
    """Whether one lowering takes an op, and the conditions it puts on a node ("" = none)."""

    lowers: bool
    conditions: str = ""
    dtypes: tuple[str, ...] = ()
    int8: str | None = None  # TFLite only: None float only, "" always int8, else the condition

    def cell(self) -> str:
        if not self.lowers:
            return "no"
        text = "yes"
        if self.dtypes and self.dtypes != ("float32",):
            text += f" ({', '.join(self.dtypes)})"
        return f"{text}: {self.conditions}" if self.conditions else text

    def int8_cell(self) -> str:
        if not self.lowers or self.int8 is None:
            return "no" if not self.lowers else "float only"
        return f"yes: {self.int8}" if self.int8 else "yes"


@dataclasses.dataclass(frozen=True)
class OpRow:
    op: str
    since: int  # the opset of the op's latest schema
    deprecated: bool
    tflite: Support
    tvm: Support


def onnx_ops() -> list[tuple[str, int, bool]]:
    """(op, latest schema's opset, deprecated) for every op of the default ONNX domain."""
    latest: dict[str, onnx.defs.OpSchema] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain not in ("", "ai.onnx"):
            continue
        known = latest.get(schema.name)
        if known is None or schema.since_version > known.since_version:
            latest[schema.name] = schema
    return sorted((name, s.since_version, bool(s.deprecated)) for name, s in latest.items())


def pass_removals(target: str = "x86_64-fp32") -> dict[str, tuple[str, str]]:
    """op -> (pass, condition) for ops a pass of `target`'s recipe removes before lowering
    (a pass's `removes`); the first pass in the recipe that names an op wins."""
    from edgec.passes import PASSES
    from edgec.targets import get_target

    removals: dict[str, tuple[str, str]] = {}
    for name in get_target(target).passes:
        for op, condition in getattr(PASSES.get(name), "removes", {}).items():
            removals.setdefault(op, (name, condition))
    return removals


def tflite_support() -> dict[str, Support]:
    from edgec.lower import tflite  # noqa: F401 (imports every visitor module)
    from edgec.lower.tflite.registry import VISITORS

    support = {op: Support(True, v.conditions(), tuple(sorted(v.dtypes)), v.int8_conditions())
               for op, v in VISITORS.items()}
    for op, (name, condition) in pass_removals().items():
        if op not in support:  # no visitor: the op lowers only by disappearing first
            text = f"removed before lowering by the {name} pass when: {condition}"
            support[op] = Support(True, text, int8=text)
    return support


def tvm_support() -> dict[str, Support]:
    from tvm.relax.frontend.onnx import onnx_frontend

    from edgec.lower.tvm.op_checks import BUILTIN_OPS, TVM_CHECKS, describe

    ops = set(onnx_frontend._get_convert_map()) | set(BUILTIN_OPS)
    return {op: Support(True, describe(op)) if op not in TVM_CHECKS or TVM_CHECKS[op].lowers
            else Support(False, describe(op)) for op in ops}


def supported_ops(formats: tuple[str, ...] = ("tflite", "tvm")) -> list[OpRow]:
    """One row per default-domain ONNX op (deprecated ones included: old files use them)."""
    no = Support(False)
    tfl = tflite_support() if "tflite" in formats else {}
    tvm = tvm_support() if "tvm" in formats else {}
    return [OpRow(op, since, deprecated, tfl.get(op, no), tvm.get(op, no)) for op, since, deprecated in onnx_ops()]


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: list[OpRow]) -> str:
    import tvm

    from edgec.ir import OPSET

    n = len(rows)
    n_tfl = sum(r.tflite.lowers for r in rows)
    n_int8 = sum(r.tflite.lowers and r.tflite.int8 is not None for r in rows)
    n_tvm = sum(r.tvm.lowers for r in rows)
    lines = [
        "# Supported ONNX ops",
        "",
        "Generated by `scripts/generate_supported_ops.py` from the lowering registries (do not edit by hand; "
        "`edgec ops` prints the same table). ONNX files are converted to opset "
        f"{OPSET} on import, so an op is listed with its latest schema.",
        "",
        f"{n} ONNX ops (onnx {onnx.__version__}); TFLite lowers {n_tfl} ({n_int8} of them in int8), "
        f"Apache TVM {tvm.__version__} lowers {n_tvm}.",
        "",
        f"- TFLite, every node: {TFLITE_GENERAL}. Element types in brackets are the run-time tensor "
        "types an op takes beyond float32.",
        f"- TVM, every node: {TVM_GENERAL}.",
        "- Ops that constant folding removes (shape arithmetic on static shapes, Range, ConstantOfShape, ...) "
        "need no lowering when their inputs are constant.",
        "",
        "| op | opset | TFLite fp32 | TFLite int8 | TVM |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        name = f"{r.op} (deprecated)" if r.deprecated else r.op
        lines.append(f"| {name} | {r.since} | {_md(r.tflite.cell())} | {_md(r.tflite.int8_cell())} | "
                     f"{_md(r.tvm.cell())} |")
    return "\n".join(lines) + "\n"
