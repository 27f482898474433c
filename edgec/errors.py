"""User-facing errors.

Every failure a user can cause (a bad file, an unknown target, an op we cannot lower) is an
`EdgecError`: the CLI prints its message on one line and exits non-zero, without a traceback.
Anything else escaping is a bug in edgec and keeps its traceback.
"""

from __future__ import annotations


class EdgecError(Exception):
    """An error caused by the input or the options; the message says what to do."""

    exit_code = 2


class ModelLoadError(EdgecError):
    """The model file is missing, truncated, of an unknown kind, or refused for safety."""


class InputShapeError(EdgecError):
    """The model has dynamic dimensions, or the given inputs do not match its signature."""


class UnknownTargetError(EdgecError):
    """A target or device name that devices.yaml does not define."""


class UnsupportedOpsError(EdgecError):
    """One or more nodes cannot be lowered for a target; lists every one of them."""

    def __init__(self, target: str, fmt: str, nodes: list[tuple[str, str, str]]):
        # nodes: (node name, op type, why)
        self.target = target
        self.format = fmt
        self.nodes = nodes
        lines = [f"{len(nodes)} node(s) cannot be lowered to {fmt} for target '{target}':"]
        for name, op, why in nodes:
            lines.append(f"  - {op} '{name}': {why}")
        super().__init__("\n".join(lines))


class VerificationError(EdgecError):
    """An artifact's outputs differ from the float reference by more than the target allows."""

    exit_code = 3


class PassError(EdgecError):
    """A graph pass refused or failed on a node; the message names the node."""
