"""CPU pinning for host benchmarks: `--cpus 0-3,6` -> os.sched_setaffinity.

Pinning takes effect for threads created after it, so it is applied before a runtime is
loaded (LiteRT, TVM and onnxruntime start their thread pools at load or first run) and the
calling thread's old mask is restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from edgec.errors import EdgecError


def parse_cpus(text: str) -> set[int]:
    """'0-3,6' -> {0, 1, 2, 3, 6}."""
    cpus: set[int] = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise EdgecError(f"--cpus {text!r}: expected CPU numbers like 0-3,6") from None
    if not cpus:
        raise EdgecError(f"--cpus {text!r}: no CPUs named")
    available = current_cpus()
    missing = sorted(cpus - set(available))
    if missing:
        raise EdgecError(f"--cpus {text!r}: CPU(s) {missing} are not available to this process "
                         f"(available: {format_cpus(available)})")
    return cpus


def current_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def format_cpus(cpus) -> str:
    cpus = sorted(cpus)
    ranges, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            ranges.append(f"{start}" if start == c else f"{start}-{c}")
            start = None
    return ",".join(ranges)


@contextlib.contextmanager
def pinned(cpus: set[int] | None) -> Iterator[list[int]]:
    """Run the block on `cpus` (or unchanged with None); yields the mask in force."""
    if not cpus:
        yield current_cpus()
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield current_cpus()
    finally:
        os.sched_setaffinity(0, before)
