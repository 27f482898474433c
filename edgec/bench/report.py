"""What `edgec bench` and `edgec devices` print: tables people read at a glance."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgec.bench.result import BenchResult


def print_result(console: Console, res: BenchResult, title: str | None = None) -> None:
    s = res.stats
    lo, hi = s.median_ci_ms
    table = Table(title=title or res.label(), title_justify="left", show_header=True)
    for col in ("median ms", "95% CI", "p10", "p90", "cv", "runs", "threads", "cpus"):
        table.add_column(col, justify="right")
    threads = res.runtime.get("threads_effective") or res.runtime.get("threads") or "default"
    table.add_row(f"{s.median_ms:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{s.p10_ms:.3f}", f"{s.p90_ms:.3f}",
                  f"{s.cv:.1%}", str(s.n), str(threads), str(res.runtime.get("cpu_affinity") or "-"))
    console.print(table)
    console.print(Text(f"timed: {res.covers}", style="dim"), highlight=False)
    for note in res.notes:
        console.print(Text(note, style="bold yellow"), highlight=False)


def print_vs(console: Console, vs) -> None:
    table = Table(title=f"interleaved A B A B on {vs.a.device['name']}", title_justify="left")
    for col in ("", "artifact", "median ms", "95% CI", "p10", "p90", "cv"):
        table.add_column(col, justify="right")
    for name, res in (("A", vs.a), ("B", vs.b)):
        s = res.stats
        table.add_row(name, Path(res.artifact["path"]).name, f"{s.median_ms:.3f}",
                      f"[{s.median_ci_ms[0]:.3f}, {s.median_ci_ms[1]:.3f}]", f"{s.p10_ms:.3f}",
                      f"{s.p90_ms:.3f}", f"{s.cv:.1%}")
    console.print(table)
    r = vs.ratio
    verdict = "B slower" if r.ci[0] > 1 else "B faster" if r.ci[1] < 1 else "no significant difference"
    console.print(f"ratio B/A = {r.ratio:.3f} (95% CI {r.ci[0]:.3f} .. {r.ci[1]:.3f}, paired bootstrap): {verdict}",
                  highlight=False)
    for note in vs.a.notes:
        console.print(Text(note, style="bold yellow"), highlight=False)


def print_devices(console: Console, statuses, registry_path: Path) -> None:
    # One line per device and its reason below: the reasons are sentences with commands in
    # them, which a table column would chop into fragments.
    console.print(f"devices in {registry_path}:", highlight=False)
    for st in statuses:
        d = st.device
        mark = Text("  yes ", style="green") if st.reachable else Text("  no  ", style="red")
        console.print(mark + Text(f"{d.name}", style="bold") + Text(f"  {d.kind}, {d.arch}, runtimes: "
                                                                   f"{', '.join(d.runtimes) or '-'}"))
        console.print(Text(f"        {st.why}", style="dim" if st.reachable else ""), highlight=False)
