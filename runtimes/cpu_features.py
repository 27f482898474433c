"""Whether this host's CPU has the instruction-set features a target's TVM .so is built for.

A .so built for x86-64-v4 (AVX-512) or with +avx512vnni dies of SIGILL on a CPU without them.
Verification and `Artifact.runtime` ask first and say "not run: this host lacks ..." instead.
The features come from the target's tvm_target (mcpu level, mattr), the host's from
/proc/cpuinfo (Linux; elsewhere nothing is known and nothing is refused).
"""

from __future__ import annotations

from functools import lru_cache

# /proc/cpuinfo flag names for what LLVM's x86-64 micro-architecture levels imply (the
# vector parts a kernel uses; v2's SSE4.2/POPCNT are on every x86-64-v3 CPU anyway).
_X86_LEVELS = {
    "x86-64-v3": ("avx", "avx2", "fma", "f16c", "bmi2"),
    "x86-64-v4": ("avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"),
}
# LLVM mattr names -> /proc/cpuinfo flags, where they differ only by spelling.
_MATTR_FLAGS = {"+avx512vnni": "avx512_vnni", "+avxvnni": "avx_vnni", "+avx512bf16": "avx512_bf16",
                "+avx512fp16": "avx512_fp16"}


def required_flags(tvm_target: dict) -> list[str]:
    """The /proc/cpuinfo flags an x86_64 llvm target's code may execute (empty for others)."""
    if tvm_target.get("kind", "llvm") != "llvm" or not str(tvm_target.get("mtriple", "x86_64")).startswith("x86_64"):
        return []
    flags = list(_X86_LEVELS.get(str(tvm_target.get("mcpu", "")), ()))
    for attr in tvm_target.get("mattr", []) or []:
        attr = str(attr)
        if attr.startswith("+"):
            flags.append(_MATTR_FLAGS.get(attr, attr[1:]))
    return sorted(set(flags))


@lru_cache(maxsize=1)
def host_flags() -> frozenset[str] | None:
    """This CPU's feature flags, or None when /proc/cpuinfo does not say."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def missing_flags(tvm_target: dict, flags: frozenset[str] | None = None) -> list[str]:
    """Flags the target needs that this host (or `flags`) lacks; empty when all are there or unknown."""
    flags = host_flags() if flags is None else flags
    if flags is None:
        return []
    return [f for f in required_flags(tvm_target) if f not in flags]


def faster_sibling(target, targets) -> str | None:
    """A target this CPU runs that is `target` plus instruction-set features (x86_64-fp32 ->
    x86_64-fp32-avx512, x86_64-int8 -> x86_64-int8-vnni), for a hint after a compile; or None."""
    needs = set(required_flags(target.tvm_target))
    for other in targets:
        if not other.name.startswith(target.name + "-") or other.precision != target.precision:
            continue
        other_needs = set(required_flags(other.tvm_target))
        if other_needs > needs and not missing_flags(other.tvm_target):
            return other.name
    return None
