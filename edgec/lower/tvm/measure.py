"""Where tuning candidates are built and timed: the host, or an arm64 board over TVM's RPC.

- Builds run in this process. MetaSchedule's LocalBuilder starts fresh worker processes for
  every batch, and each imports tvm.s_tir.tensor_intrin (its CUDA intrinsics alone measured
  41 s to import here): every build timed out. In process, that import is paid once.
- Host-runnable targets are timed by TVM's LocalRunner (one worker, one TVM thread: the
  timings are single-core kernel latencies, stable on a shared machine).
- Targets for another architecture are timed on a board behind the RPC tracker devices.yaml
  names (a device of kind rpc with the target's arch), with TVM's RPCRunner. With no such
  board reachable, tuning stops before it starts: an emulator's timings are not the board's.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.builder.local_builder import default_build

from edgec.errors import EdgecError
from edgec.targets import Device, Registry, Target


@derived_object
class InProcessBuilder(PyBuilder):
    """Builds each candidate here and exports it as a .tar of object files, which the runner
    (local or the board's RPC server) links and loads, as MetaSchedule's own builder does."""

    def build(self, build_inputs):
        results = []
        for item in build_inputs:
            try:
                module = default_build(item.mod, item.target, None)
                folder = tempfile.mkdtemp(prefix="edgec_tune_")
                path = os.path.join(folder, "candidate.tar")
                module.export_library(path, fcompile=_tar)
                results.append(BuilderResult(path, None))
            except Exception as exc:  # noqa: BLE001  (a bad candidate, not a failed tuning run)
                results.append(BuilderResult(None, f"build failed: {str(exc).splitlines()[0][:500]}"))
        return results


def _tar(output, files, **kwargs):
    from tvm.support.tar import tar

    return tar(output, files)


_tar.output_format = "tar"


def remove_artifact(path: str | None) -> None:
    if path:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def make_runner(target: Target, registry: Registry, device: str | None, log) -> tuple[ms.runner.Runner, str]:
    """The runner for `target` and a phrase saying where it measures."""
    if target.is_host_arch and device in (None, "host"):
        # One TVM thread in the runner's worker: set before LocalRunner starts it.
        os.environ["TVM_NUM_THREADS"] = "1"
        evaluator = ms.runner.EvaluatorConfig(number=3, repeat=3, min_repeat_ms=20, enable_cpu_cache_flush=False)
        return ms.runner.LocalRunner(timeout_sec=60, evaluator_config=evaluator), "this host, 1 thread"
    board = _board(target, registry, device)
    host, port = _tracker(board)
    _require_reachable(board, host, port, target)
    config = ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=board.options["key"],
                                 session_timeout_sec=60)
    evaluator = ms.runner.EvaluatorConfig(number=3, repeat=3, min_repeat_ms=50, enable_cpu_cache_flush=False)
    log(f"measuring on board '{board.name}' (tracker {host}:{port}, key {board.options['key']})")
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator), f"board {board.name} over RPC"


def _board(target: Target, registry: Registry, device: str | None) -> Device:
    if device is not None:
        board = registry.device(device)
        if board.kind != "rpc" or board.arch != target.arch:
            raise EdgecError(f"--device '{device}' is a {board.kind} device for {board.arch}; tuning "
                             f"'{target.name}' measures on an rpc board for {target.arch} (devices.yaml)")
        return board
    boards = [d for d in registry.devices.values() if d.kind == "rpc" and d.arch == target.arch]
    if not boards:
        raise EdgecError(f"target '{target.name}' is for {target.arch}, which this host cannot time, and "
                         f"devices.yaml ({registry.path}) names no rpc board for {target.arch}; add one "
                         "(kind: rpc, tracker HOST:PORT, key) — nothing was tuned")
    return boards[0]


def _tracker(board: Device) -> tuple[str, int]:
    from edgec.runtimes.rpc import parse_address

    if not board.options.get("tracker") or not board.options.get("key"):
        raise EdgecError(f"device '{board.name}' needs tracker: HOST:PORT and key: in devices.yaml "
                         f"(has tracker {board.options.get('tracker')!r}, key {board.options.get('key')!r})")
    return parse_address(str(board.options["tracker"]))


def _require_reachable(board: Device, host: str, port: int, target: Target) -> None:
    from edgec.runtimes.rpc import tracker_status

    try:
        ok, why = tracker_status(f"{host}:{port}", board.options["key"], timeout_s=5)
    except Exception as exc:  # noqa: BLE001 - a port that answers but is no TVM tracker
        ok, why = False, f"the tracker does not answer ({str(exc).splitlines()[0][:200]})"
    if not ok:
        raise EdgecError(f"no {target.arch} board is reachable to tune '{target.name}': device '{board.name}': "
                         f"{why} — nothing was tuned")
