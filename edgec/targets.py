"""Targets and devices, read from devices.yaml.

A target says what to build (formats, pass recipe, TVM target, tolerance); a device says
where an artifact can run. The file is looked up in this order: the path given by the
caller, $EDGEC_DEVICES, then the devices.yaml at the top of the edgec source tree.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from pathlib import Path
from typing import Any

import yaml

from edgec.errors import EdgecError, UnknownTargetError

KNOWN_FORMATS = ("tflite", "tvm")
KNOWN_ARCHS = ("x86_64", "arm64", "wasm32", "cuda")
KNOWN_PRECISIONS = ("fp32", "fp16", "int8", "int4")


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """What verification holds an artifact to; a limit left as None is reported, not enforced.

    max_rel_error / min_sqnr_db compare with the float reference; min_lsb_agreement (integer
    targets) is the fraction of output elements within one output quantization step of the
    onnxruntime QDQ reference, i.e. whether the lowering computes what the quantized graph says.
    """

    max_rel_error: float | None = None
    min_sqnr_db: float | None = None
    min_lsb_agreement: float | None = None


@dataclasses.dataclass(frozen=True)
class Quantization:
    """How an integer target quantizes: weight bits and the default calibration method."""

    weight_bits: int = 8
    method: str = "minmax"
    percentile: float = 99.99
    bias_correction: bool = True
    equalization: bool = True


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    arch: str
    precision: str
    formats: tuple[str, ...]
    passes: tuple[str, ...]
    tvm_target: dict[str, Any]
    tolerance: Tolerance
    runs_on: tuple[str, ...] = ("host",)
    tvm_cross_compiler: str | None = None
    description: str = ""
    quantization: Quantization | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_integer(self) -> bool:
        return self.precision in ("int8", "int4")

    @property
    def is_host_arch(self) -> bool:
        """True when a native .so built for this target loads on this machine."""
        return self.arch == host_arch()


@dataclasses.dataclass(frozen=True)
class Device:
    name: str
    kind: str
    arch: str
    runtimes: tuple[str, ...]
    description: str = ""
    options: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Registry:
    path: Path
    targets: dict[str, Target]
    devices: dict[str, Device]

    def target(self, name: str) -> Target:
        if name in self.targets:
            return self.targets[name]
        raise UnknownTargetError(_unknown("target", name, self.targets, self.path))

    def device(self, name: str) -> Device:
        if name in self.devices:
            return self.devices[name]
        raise UnknownTargetError(_unknown("device", name, self.devices, self.path))


def host_arch() -> str:
    machine = os.uname().machine
    return {"aarch64": "arm64", "arm64": "arm64", "amd64": "x86_64"}.get(machine, machine)


def default_devices_path() -> Path:
    env = os.environ.get("EDGEC_DEVICES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "devices.yaml"


@functools.lru_cache(maxsize=8)
def _load_cached(path: Path, mtime: float) -> Registry:
    del mtime  # part of the cache key only: an edited file is read again
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise EdgecError(f"{path}: devices file not found; set EDGEC_DEVICES or pass --devices") from None
    except yaml.YAMLError as exc:
        raise EdgecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or "targets" not in raw:
        raise EdgecError(f"{path}: expected a mapping with a 'targets' section")
    targets = {name: _parse_target(path, name, spec) for name, spec in (raw.get("targets") or {}).items()}
    devices = {name: _parse_device(path, name, spec) for name, spec in (raw.get("devices") or {}).items()}
    for t in targets.values():
        for d in t.runs_on:
            if d not in devices:
                raise EdgecError(f"{path}: target '{t.name}' runs_on unknown device '{d}'")
    return Registry(path=path, targets=targets, devices=devices)


def load_registry(path: str | Path | None = None) -> Registry:
    p = Path(path) if path else default_devices_path()
    try:
        mtime = p.stat().st_mtime
    except FileNotFoundError:
        raise EdgecError(f"{p}: devices file not found; set EDGEC_DEVICES or pass --devices") from None
    return _load_cached(p.resolve(), mtime)


def get_target(name: str, devices_path: str | Path | None = None) -> Target:
    return load_registry(devices_path).target(name)


def _unknown(kind: str, name: str, known: dict, path: Path) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {kind} '{name}'.{hint} Known {kind}s (from {path}): {', '.join(sorted(known))}"


def _require(path: Path, where: str, spec: dict, key: str, allowed: tuple[str, ...] | None = None):
    if key not in spec:
        raise EdgecError(f"{path}: {where} is missing '{key}'")
    value = spec[key]
    if allowed is not None and value not in allowed:
        raise EdgecError(f"{path}: {where} has {key}={value!r}; expected one of {', '.join(allowed)}")
    return value


def _parse_target(path: Path, name: str, spec: dict) -> Target:
    where = f"target '{name}'"
    if not isinstance(spec, dict):
        raise EdgecError(f"{path}: {where} must be a mapping")
    formats = tuple(_require(path, where, spec, "formats"))
    for f in formats:
        if f not in KNOWN_FORMATS:
            raise EdgecError(f"{path}: {where} has unknown format '{f}'; expected {', '.join(KNOWN_FORMATS)}")
    tol = spec.get("tolerance") or {}
    known_keys = {
        "arch", "precision", "formats", "passes", "tvm_target", "tvm_cross_compiler",
        "runs_on", "tolerance", "description", "quantization",
    }
    precision = _require(path, where, spec, "precision", KNOWN_PRECISIONS)
    quant = spec.get("quantization")
    if precision in ("int8", "int4") and quant is None:
        quant = {}
    try:
        quantization = Quantization(**quant) if quant is not None else None
    except TypeError as exc:
        raise EdgecError(f"{path}: {where} has a bad 'quantization' entry: {exc}") from None
    return Target(
        name=name,
        arch=_require(path, where, spec, "arch", KNOWN_ARCHS),
        precision=precision,
        formats=formats,
        passes=tuple(spec.get("passes") or ()),
        tvm_target=dict(spec.get("tvm_target") or {"kind": "llvm"}),
        tolerance=_parse_tolerance(path, where, tol),
        quantization=quantization,
        runs_on=tuple(spec.get("runs_on") or ("host",)),
        tvm_cross_compiler=spec.get("tvm_cross_compiler"),
        description=spec.get("description", ""),
        options={k: v for k, v in spec.items() if k not in known_keys},
    )


def _parse_tolerance(path: Path, where: str, tol: dict) -> Tolerance:
    fields = {f.name for f in dataclasses.fields(Tolerance)}
    unknown = set(tol) - fields
    if unknown:
        raise EdgecError(f"{path}: {where} tolerance has unknown keys {sorted(unknown)}; expected {sorted(fields)}")
    return Tolerance(**{k: float(v) for k, v in tol.items()})


def _parse_device(path: Path, name: str, spec: dict) -> Device:
    where = f"device '{name}'"
    if not isinstance(spec, dict):
        raise EdgecError(f"{path}: {where} must be a mapping")
    known_keys = {"kind", "arch", "runtimes", "description"}
    return Device(
        name=name,
        kind=_require(path, where, spec, "kind"),
        arch=_require(path, where, spec, "arch", KNOWN_ARCHS),
        runtimes=tuple(spec.get("runtimes") or ()),
        description=spec.get("description", ""),
        options={k: v for k, v in spec.items() if k not in known_keys},
    )
