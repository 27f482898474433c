"""Atomic file writes and staging folders: a failed compile never leaves a half-written artifact.

A compile writes into a hidden staging folder inside the output folder and moves the files into
place at the end. The folder records its owner (pid and host), so that a later compile can remove
the leftovers of a killed run (SIGKILL, power loss) without touching a live concurrent compile's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

OWNER_FILE = ".owner"  # in a staging folder: "<pid> <host>"
# A supervising edgec process (edgec.supervise) names a file here; each staging folder is listed
# in it, so the supervisor can remove them when it has to kill the worker.
STAGING_LOG_ENV = "EDGEC_STAGING_LOG"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    For writers that want a file name (e.g. TVM's export_library) rather than bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; artifacts get the permissions any other new file would.
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask() | (tmp_path.stat().st_mode & 0o111))
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


@contextlib.contextmanager
def staging_folder(out_dir: str | Path, prefix: str) -> Iterator[Path]:
    """A new hidden folder in out_dir, owned by this process and removed when the block ends."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sweep_stale_staging(out_dir)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir))
    try:
        (path / OWNER_FILE).write_text(f"{os.getpid()} {socket.gethostname()}\n")
        log = os.environ.get(STAGING_LOG_ENV)
        if log:
            with open(log, "a") as f:
                f.write(f"{path}\n")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def staging_owner(path: Path) -> tuple[int, str] | None:
    try:
        pid, host = (path / OWNER_FILE).read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def sweep_stale_staging(out_dir: Path) -> list[Path]:
    """Remove hidden staging folders whose owner process on this host is gone; returns them.

    Folders without an owner record are left alone: they may be a live compile's that has not
    written its record yet.
    """
    removed = []
    host = socket.gethostname()
    try:
        candidates = [p for p in out_dir.iterdir() if p.name.startswith(".") and p.is_dir()]
    except OSError:
        return removed
    for path in candidates:
        owner = staging_owner(path)
        if owner is None or owner[1] != host or owner[0] == os.getpid() or _alive(owner[0]):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def remove_staging_of(pid: int, log: Path) -> None:
    """Remove the staging folders a (killed) worker process `pid` listed in `log`."""
    try:
        paths = [Path(line) for line in log.read_text().splitlines() if line.strip()]
    except OSError:
        return
    for path in paths:
        owner = staging_owner(path)
        if owner is not None and owner[0] == pid:
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    # A zombie (exited, not yet reaped) still answers; it writes nothing more, so it counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
