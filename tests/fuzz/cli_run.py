"""Running the `edgec` command as a user does, and the checks every bad-input case shares."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

EDGEC = [sys.executable, "-m", "edgec.cli"]


def run(*args, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([*EDGEC, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **(env or {})})


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under folder (hidden ones included) -> its sha256: 'nothing changed' checks."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def assert_clean_failure(proc, *fragments, code=None, out: Path | None = None, before=None, marker=None):
    """Non-zero exit (or `code`), one 'error: ...' line holding the fragments, no traceback,
    and the output folder as it was before (nothing added, nothing changed, no staging)."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], proc.stderr
    if out is not None:
        assert snapshot(out) == (before or {}), "the output folder changed"
    if marker is not None:
        assert not Path(marker).exists(), "a payload ran"
