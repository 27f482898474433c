"""The coverage table: coverage.json (every row, as measured) and coverage.md (per model, both targets side
by side; coverage per target; failures grouped by stage and cause)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path


def merge(old: list[dict], new: list[dict]) -> list[dict]:
    """Rows of `new` replace those of `old` with the same (model, target); the rest of `old` stay."""
    fresh = {(r["model"], r["target"]) for r in new}
    return [r for r in old if (r["model"], r["target"]) not in fresh] + new


def cause_key(row: dict) -> str:
    """What groups failures: the stage and the ops it names, or the first line of the cause with numbers,
    names in quotes and paths blanked (so 'node conv_12' and 'node conv_40' group together)."""
    stage = row.get("stage", "?")
    if row.get("ops"):
        return f"{stage}: unsupported {', '.join(row['ops'])}"
    first = (row.get("cause") or "").strip().splitlines()
    text = first[0] if first else ""
    if stage == "verify" and len(first) > 1:  # 'verification failed, ...' then the figure that failed
        text = first[1].strip()
    text = re.sub(r"'[^']*'", "'…'", text)
    text = re.sub(r"/[\w./+-]+", "<path>", text)
    text = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", text)
    return f"{stage}: {text[:180]}"


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def _cell(row: dict | None) -> list[str]:
    if row is None:
        return ["–", "", "", ""]
    status = "ok" if row["status"] == "ok" else f"**{row.get('stage', '?')}**"
    return [status, _fmt(row.get("seconds"), ".1f"), _fmt(row.get("sqnr_db"), ".1f"),
            _fmt(row.get("max_rel_error"), ".1e")]


def markdown(rows: list[dict]) -> str:
    targets = sorted({r["target"] for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    by = {(r["model"], r["target"]): r for r in rows}
    dates = sorted({r.get("date", "?") for r in rows})
    commits = sorted({r.get("commit", "?") for r in rows})
    machines = sorted({r.get("machine", "?") for r in rows})
    out = ["# Coverage: timm and transformers architectures (random weights) through edgec", "",
           f"Measured {dates[0]}" + (f" to {dates[-1]}" if len(dates) > 1 else "")
           + f" at commit(s) {', '.join(commits)}, on {'; '.join(machines)}.",
           "Command: `.venv/bin/python benchmarks/coverage.py` (`make coverage`). int8 uses `--calib random`: its SQNR "
           "is a coverage figure, not the accuracy real calibration data would give.", ""]
    for t in targets:
        tr = [r for r in rows if r["target"] == t]
        ok = sum(r["status"] == "ok" for r in tr)
        out.append(f"- **{t}**: {ok}/{len(tr)} ok ({100 * ok / max(1, len(tr)):.0f}%)"
                   + (" (ok = compiled, verified, and max relative error vs torch <= 1e-4 on every artifact)"
                      if t.endswith("fp32") else " (ok = compiled and verified)"))
    out += ["", "Columns per target: status (ok, or the stage that failed), compile seconds, SQNR vs torch (dB, "
            "worst artifact), max relative error vs torch (worst artifact).", ""]
    head = ["model", "family", "params"] + [f"{t} {c}" for t in targets for c in ("status", "s", "SQNR", "max rel")]
    out += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for m in models:
        any_row = next(r for r in rows if r["model"] == m)
        params = any_row.get("parameters")
        cells = [m, any_row.get("family", ""), f"{params / 1e6:.1f}M" if params else ""]
        for t in targets:
            cells += _cell(by.get((m, t)))
        out.append("| " + " | ".join(cells) + " |")
    for t in targets:
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            if r["target"] == t and r["status"] != "ok":
                groups[cause_key(r)].append(r)
        if not groups:
            continue
        out += ["", f"## {t} failures by cause", ""]
        for key, rs in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            out.append(f"- {key} ({len(rs)}): {', '.join(r['model'] for r in rs)}")
            sample = (rs[0].get("cause") or "").strip().splitlines()
            if sample:
                detail = " / ".join(ln.strip() for ln in sample[:4])
                out.append(f"  - e.g. {rs[0]['model']}: `{detail[:400]}`")
    return "\n".join(out) + "\n"


def write_results(rows: list[dict], folder: Path, suite: set[str]) -> str:
    """Merge `rows` into the folder's table (a run of some models or targets updates those rows only);
    rows of models no longer in the suite are dropped."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "coverage.json"
    if path.exists():
        rows = merge(json.loads(path.read_text()), rows)
    rows = [r for r in rows if r["model"] in suite]
    path.write_text(json.dumps(rows, indent=1, default=str))
    text = markdown(rows)
    (folder / "coverage.md").write_text(text)
    head = [ln for ln in text.splitlines() if ln.startswith("- **")]
    return "\n".join(head + [f"wrote {path} and {folder / 'coverage.md'}"])
