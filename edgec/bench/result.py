"""The benchmark result and its JSON file (schema "edgec-bench", version 1; see docs/bench.md).

A result keeps every sample, so anything can be recomputed later (another percentile, a
comparison with tomorrow's run); the summary statistics are stored too, for people and
dashboards that read the file without edgec.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from edgec.bench.stats import CONFIDENCE, RESAMPLES, SEED, Summary, summarize
from edgec.errors import EdgecError
from edgec.fsutil import atomic_write_text

SCHEMA = "edgec-bench"
SCHEMA_VERSION = 1

# Distributions whose versions change what a timing means; recorded in every result.
_VERSIONED = ("edgec", "numpy", "ai-edge-litert", "apache-tvm", "onnxruntime")


@dataclasses.dataclass
class BenchResult:
    artifact: dict[str, Any]   # path, sha256, format, size_bytes
    device: dict[str, Any]     # name, kind, arch, emulated, machine (where the samples were taken)
    runtime: dict[str, Any]    # name, threads, cpu_affinity, options
    samples_ms: list[float]
    warmup: int
    covers: str                # what one sample times, in words
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    created: str = dataclasses.field(default_factory=lambda: datetime.datetime.now(datetime.timezone.utc)
                                     .isoformat(timespec="seconds"))
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def stats(self) -> Summary:
        return summarize(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return self.stats.median_ms

    @property
    def emulated(self) -> bool:
        return bool(self.device.get("emulated"))

    def label(self) -> str:
        return f"{Path(self.artifact['path']).name} on {self.device['name']} ({self.runtime['name']})"

    def to_json(self) -> dict:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "created": self.created,
            "artifact": self.artifact,
            "device": self.device,
            "runtime": self.runtime,
            "versions": self.versions,
            "timing": {
                "unit": "ms",
                "covers": self.covers,
                "warmup": self.warmup,
                "runs": len(self.samples_ms),
                "samples_ms": list(self.samples_ms),
            },
            "stats": {**self.stats.to_json(),
                      "bootstrap": {"confidence": CONFIDENCE, "resamples": RESAMPLES, "seed": SEED}},
            "notes": self.notes,
        }

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def from_json(cls, doc: dict, source: str = "<json>") -> "BenchResult":
        if doc.get("schema") != SCHEMA or doc.get("version") != SCHEMA_VERSION:
            raise EdgecError(
                f"{source}: not an edgec benchmark result (schema={doc.get('schema')!r}, "
                f"version={doc.get('version')!r}); expected {SCHEMA} version {SCHEMA_VERSION}, "
                "as written by `edgec bench --json FILE`"
            )
        try:
            timing = doc["timing"]
            return cls(artifact=doc["artifact"], device=doc["device"], runtime=doc["runtime"],
                       samples_ms=[float(s) for s in timing["samples_ms"]], warmup=int(timing["warmup"]),
                       covers=timing["covers"], versions=doc.get("versions", {}),
                       created=doc.get("created", ""), notes=list(doc.get("notes", [])))
        except (KeyError, TypeError, ValueError) as exc:
            raise EdgecError(f"{source}: malformed benchmark result ({exc!r}); re-run `edgec bench --json`") from None

    @classmethod
    def load(cls, path: str | Path) -> "BenchResult":
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise EdgecError(f"{path}: benchmark result not found; write one with `edgec bench ... --json {path}`") from None
        except json.JSONDecodeError as exc:
            raise EdgecError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_json(doc, str(path))


def describe_artifact(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    fmt = {".tflite": "tflite", ".so": "tvm", ".onnx": "onnx"}.get(path.suffix, path.suffix.lstrip("."))
    return {"path": str(path), "sha256": digest.hexdigest(), "format": fmt, "size_bytes": path.stat().st_size}


def machine_info() -> dict[str, Any]:
    """The machine that took the samples' host side: enough to tell two CI runners apart."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"hostname": platform.node(), "system": platform.system(), "machine": platform.machine(),
            "cpu": cpu, "logical_cpus": os.cpu_count()}


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for dist in _VERSIONED:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found
