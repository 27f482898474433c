"""Numerical comparison of an artifact's outputs with a reference.

Figures per output, over every sample: max abs error, max relative error (max |a - r| divided
by max |r|, so one near-zero reference element does not dominate), SQNR in dB, and top-1
agreement for outputs shaped like class scores.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from edgec.targets import Tolerance


def sqnr_db(actual: np.ndarray, reference: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio: 10 log10(sum r^2 / sum (a - r)^2); inf when exact."""
    ref = reference.astype(np.float64)
    noise = float(np.sum((actual.astype(np.float64) - ref) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _is_class_scores(shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and shape[1] > 1


def compare_outputs(
    actual: Sequence[Sequence[np.ndarray]], reference: Sequence[Sequence[np.ndarray]], names: Sequence[str]
) -> dict:
    """actual[sample][output] vs reference[sample][output] -> report figures."""
    per_output = []
    for k, name in enumerate(names):
        a = np.stack([np.asarray(s[k], dtype=np.float64) for s in actual])
        r = np.stack([np.asarray(s[k], dtype=np.float64) for s in reference])
        if a.shape != r.shape:
            per_output.append({"name": name, "error": f"shape {list(a.shape[1:])} != reference {list(r.shape[1:])}"})
            continue
        diff = np.abs(a - r)
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        entry = {
            "name": name,
            "shape": list(a.shape[1:]),
            "max_abs_error": float(diff.max()) if diff.size else 0.0,
            "max_rel_error": float(diff.max() / scale) if scale > 0 else float(diff.max() if diff.size else 0.0),
            "sqnr_db": sqnr_db(a, r),
            "finite": bool(np.all(np.isfinite(a))),
            "reference_max_abs": scale,
        }
        if _is_class_scores(tuple(a.shape[1:])):
            agree = np.argmax(a, axis=-1) == np.argmax(r, axis=-1)
            entry["top1_agreement"] = float(np.mean(agree))
        per_output.append(entry)
    return {
        "samples": len(actual),
        "outputs": per_output,
        "max_abs_error": max((o.get("max_abs_error", math.inf) for o in per_output), default=0.0),
        "max_rel_error": max((o.get("max_rel_error", math.inf) for o in per_output), default=0.0),
        "sqnr_db": min((o.get("sqnr_db", -math.inf) for o in per_output), default=math.inf),
        "top1_agreement": min((o["top1_agreement"] for o in per_output if "top1_agreement" in o), default=None),
    }


def lsb_agreement(actual: Sequence[Sequence[np.ndarray]], reference: Sequence[Sequence[np.ndarray]],
                  steps: Sequence[float | None]) -> list[float | None]:
    """Per output: the fraction of elements within one quantization step of the reference."""
    fractions = []
    for k, step in enumerate(steps):
        if step is None:
            fractions.append(None)
            continue
        a = np.concatenate([np.asarray(s[k], np.float64).ravel() for s in actual])
        r = np.concatenate([np.asarray(s[k], np.float64).ravel() for s in reference])
        # 0.1% slack: the same integer dequantized in float32 by two runtimes may differ in the last bit.
        fractions.append(float(np.mean(np.abs(a - r) <= step * 1.001)) if a.shape == r.shape else 0.0)
    return fractions


# How much closer to the QDQ reference an artifact must stay than the QDQ reference is to float
# when it misses the 1-LSB criterion: 6 dB = a quarter of the quantization noise power.
DIVERGENCE_MARGIN_DB = 6.0


def lsb_failures(vs_qdq: dict, qdq_vs_float: dict, names: Sequence[str], tol: Tolerance) -> list[str]:
    """Whether an integer artifact computes what the QDQ graph says.

    First test: >= min_lsb_agreement of output elements within one output step of onnxruntime's
    QDQ reference. In deep networks an integer kernel and onnxruntime can round one tie apart
    (x.5 exactly) in an early layer, and that one LSB grows through the layers that follow;
    every layer is right, the outputs still differ. So an output that misses the first test
    passes if the artifact's distance to the reference is well below the quantization noise
    itself (SQNR vs QDQ >= SQNR of QDQ vs float + DIVERGENCE_MARGIN_DB). A wrong kernel (a bad
    scale, a lost zero point) fails both.
    """
    if tol.min_lsb_agreement is None:
        return []
    problems = []
    for k, name in enumerate(names):
        frac = vs_qdq["lsb_agreement"][k]
        if frac is None or frac >= tol.min_lsb_agreement:
            continue
        art = vs_qdq["outputs"][k].get("sqnr_db", -math.inf)
        quant = qdq_vs_float["outputs"][k].get("sqnr_db", math.inf)
        if art >= quant + DIVERGENCE_MARGIN_DB:
            continue
        problems.append(
            f"output '{name}': only {frac:.2%} of elements within 1 LSB of the quantized reference "
            f"(need {tol.min_lsb_agreement:.0%}), and its SQNR vs that reference, {art:.1f} dB, is not "
            f"{DIVERGENCE_MARGIN_DB:g} dB above the quantization noise ({quant:.1f} dB)")
    return problems


def drift_failures(vs_qdq: dict, qdq_vs_float: dict, names: Sequence[str]) -> list[str]:
    """End to end, for an artifact whose every layer passed the faithfulness check: rounding
    ties may compound through depth, but the artifact's distance to the quantized reference
    must stay below the quantization noise itself (SQNR vs QDQ >= SQNR of QDQ vs float). A
    fault in what the per-layer check cannot see (e.g. XNNPACK's kernels vs the builtin ones
    it ran) shows up here."""
    problems = []
    for k, name in enumerate(names):
        art = vs_qdq["outputs"][k].get("sqnr_db", -math.inf)
        quant = qdq_vs_float["outputs"][k].get("sqnr_db", math.inf)
        if math.isfinite(quant) and art < quant:  # (no quantization noise: the float tolerance rules)
            problems.append(f"output '{name}': SQNR vs the quantized reference, {art:.1f} dB, is below the "
                            f"quantization noise ({quant:.1f} dB vs float)")
    return problems


# Verification samples below which an accuracy budget is reported but not held.
MIN_BUDGET_SAMPLES = 50


def accuracy_summary(vs_float: dict, budget: float | None, enforced: bool, rms_rule: bool = True) -> dict:
    """What quantization costs, end to end vs the float graph: per output SQNR, top-1 agreement
    for class scores, relative RMS error (percent), and the user's budget when one applies.
    `rms_rule`: the budget bounds non-classifier outputs' relative RMS error in percent (int8;
    for int4 the budget is in dB of SQNR per layer choice, and only top-1 is held here)."""
    outputs = []
    for o in vs_float["outputs"]:
        if "error" in o:
            continue
        entry = {"name": o["name"], "sqnr_db": o["sqnr_db"],
                 "relative_rms_error_pct": 100.0 * 10 ** (-o["sqnr_db"] / 20) if math.isfinite(o["sqnr_db"]) else
                 (0.0 if o["sqnr_db"] > 0 else math.inf)}
        if "top1_agreement" in o:
            entry["top1_agreement"] = o["top1_agreement"]
        outputs.append(entry)
    why = None
    if budget is not None and not enforced:
        why = "random calibration data: the budget is held only on real samples"
    elif budget is not None and vs_float["samples"] < MIN_BUDGET_SAMPLES:
        # One changed prediction in 4 samples is 25 points: too coarse to hold a budget to.
        why = (f"only {vs_float['samples']} verification samples; the budget is held on >= {MIN_BUDGET_SAMPLES} "
               "(--samples)")
    return {"outputs": outputs, "budget": budget, "enforced": budget is not None and why is None,
            "rms_rule": rms_rule, "samples": vs_float["samples"], "why_not_enforced": why}


def accuracy_failures(accuracy: dict) -> list[str]:
    """Outputs over the user's budget: top-1 agreement with float below 100 - budget percent
    (class scores), else relative RMS error above `budget` percent."""
    if not accuracy["enforced"]:
        return []
    budget = accuracy["budget"]
    problems = []
    for o in accuracy["outputs"]:
        if "top1_agreement" in o:
            drop = 100.0 * (1.0 - o["top1_agreement"])
            if drop > budget:
                problems.append(f"output '{o['name']}': top-1 agreement with float {o['top1_agreement']:.1%} is "
                                f"{drop:.1f} points below float, over the accuracy budget of {budget:g}")
        elif accuracy.get("rms_rule", True) and o["relative_rms_error_pct"] > budget:
            problems.append(f"output '{o['name']}': relative RMS error vs float {o['relative_rms_error_pct']:.2f}% "
                            f"is over the accuracy budget of {budget:g}%")
    return problems


def _denormal_note(reference_max_abs: float | None) -> str:
    """Why a relative error means nothing when the whole reference output is float32 denormals:
    XNNPACK and TVM's kernels flush denormals to zero, onnxruntime and torch keep them."""
    if reference_max_abs is None or not 0.0 < reference_max_abs < float(np.finfo(np.float32).tiny):
        return ""
    return (f" (every reference value is a float32 denormal, |x| <= {reference_max_abs:.3g}: kernels that flush "
            "denormals to zero give 0 there; the model's signal vanishes on these inputs, so check its weights "
            "and normalisation statistics, or verify with inputs that give normal-range outputs)")


def tolerance_failures(figures: dict, tol: Tolerance) -> list[str]:
    """Why the figures break the target's float tolerance; empty when they pass."""
    problems = []
    for o in figures["outputs"]:
        if "error" in o:
            problems.append(f"output '{o['name']}': {o['error']}")
            continue
        if not o["finite"]:
            problems.append(f"output '{o['name']}' has NaN or Inf")
        if tol.max_rel_error is not None and o["max_rel_error"] > tol.max_rel_error:
            problems.append(
                f"output '{o['name']}': max relative error {o['max_rel_error']:.3g} > {tol.max_rel_error:g}"
                + _denormal_note(o.get("reference_max_abs"))
            )
        if tol.min_sqnr_db is not None and o["sqnr_db"] < tol.min_sqnr_db:
            problems.append(f"output '{o['name']}': SQNR {o['sqnr_db']:.1f} dB < {tol.min_sqnr_db:g} dB")
    return problems


def json_safe(value):
    """Report JSON has no Infinity/NaN literals: inf -> 'inf' strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
