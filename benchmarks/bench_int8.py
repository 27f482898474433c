"""edgec int8 measured against the TFLite converter's int8 and onnxruntime's
quantize_static, on the same MNIST-trained models and the same calibration set.

    make bench-int8          # or: .venv/bin/python benchmarks/bench_int8.py

Columns: top-1 on the 1,000-image MNIST test split, top-1 agreement with the float model,
latency (median and 95% bootstrap interval over interleaved repeats: every runtime is timed in
turn, round after round, so machine noise hits them alike), and file size. Then MobileNet v2
at 224x224 (random weights, random calibration: latency only), fp32 vs int8 in LiteRT.
The TFLite converter column needs the optional TensorFlow environment (`make peers`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import edgec
from edgec.bench.stats import median_ratio, summarize
from edgec.datasets import mnist, mnist_calibration
from edgec.frontends import load_model
from edgec.ir import to_proto
from edgec.passes import run_passes
from edgec.runtimes.litert import LiteRTRuntime
from edgec.runtimes.onnxrt import OnnxRuntime
from edgec.targets import get_target

REPO = Path(__file__).resolve().parent.parent
PEERS_PYTHON = REPO / ".venv-peers" / "bin" / "python"
sys.path.insert(0, str(REPO))
from benchmarks.peers.ort_quantize_static import quantize_with_onnxruntime  # noqa: E402

TARGET = "x86_64-int8"


def _float_onnx(spec: str, path: Path) -> Path:
    """The canonical float graph (BatchNorm folded), which onnxruntime's quantizer starts from."""
    import onnx

    imported = load_model(spec)
    model, _ = run_passes(imported.model, list(get_target("x86_64-fp32").passes))
    onnx.save(to_proto(model), str(path))
    return path


def _tf_int8(float_tflite: Path, calib: Path, out: Path) -> Path | None:
    if not PEERS_PYTHON.exists():
        print("  (no .venv-peers: run `make peers` for the TFLite converter column)", file=sys.stderr)
        return None
    script = REPO / "benchmarks" / "peers" / "tflite_converter_int8.py"
    subprocess.run([str(PEERS_PYTHON), str(script), str(float_tflite), str(calib), str(out)],
                   check=True, capture_output=True)
    return out


def _accuracy(runtime, x: np.ndarray, y: np.ndarray, shape) -> tuple[float, np.ndarray]:
    preds = np.array([int(np.argmax(runtime.run([x[i:i + 1].reshape(shape)])[0])) for i in range(len(x))])
    return float(np.mean(preds == y)), preds


def _interleaved(runtimes: dict, x: np.ndarray, repeats: int, warmup: int = 20) -> dict[str, list[float]]:
    for rt in runtimes.values():
        rt.set_inputs([x])
        for _ in range(warmup):
            rt.invoke()
    samples = {k: [] for k in runtimes}
    for _ in range(repeats):
        for k, rt in runtimes.items():
            t0 = time.perf_counter_ns()
            rt.invoke()
            samples[k].append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def bench_model(name: str, work: Path, repeats: int) -> dict:
    spec = f"zoo:{name}?weights=mnist"
    calib = mnist_calibration(200)
    calib_path = work / f"{name}.calib.npz"
    np.savez(calib_path, x=calib)
    fp32 = edgec.compile(spec, target="x86_64-fp32", out_dir=work, formats=["tflite"]).paths["tflite"]
    int8 = edgec.compile(spec, target=TARGET, out_dir=work, formats=["tflite"], calibration=calib_path).paths["tflite"]
    float_onnx = _float_onnx(spec, work / f"{name}.float.onnx")
    ort_int8 = quantize_with_onnxruntime(float_onnx, calib, work / f"{name}.ort_int8.onnx")
    tf_int8 = _tf_int8(fp32, calib_path, work / f"{name}.tf_int8.tflite")

    runtimes = {
        "float (LiteRT)": LiteRTRuntime(fp32),
        "edgec int8 (LiteRT)": LiteRTRuntime(int8),
        "onnxruntime int8 (onnxruntime)": OnnxRuntime(ort_int8),
        "float (onnxruntime)": OnnxRuntime(float_onnx),
    }
    files = {"float (LiteRT)": fp32, "edgec int8 (LiteRT)": int8,
             "onnxruntime int8 (onnxruntime)": ort_int8, "float (onnxruntime)": float_onnx}
    if tf_int8 is not None:
        runtimes["TFLite converter int8 (LiteRT)"] = LiteRTRuntime(tf_int8)
        files["TFLite converter int8 (LiteRT)"] = tf_int8
    shape = tuple(runtimes["float (LiteRT)"].inputs[0].shape)
    xte, yte = mnist("test")
    rows = {}
    _, float_preds = _accuracy(runtimes["float (LiteRT)"], xte, yte, shape)
    for key, rt in runtimes.items():
        acc, preds = _accuracy(rt, xte, yte, shape)
        rows[key] = {"top1": acc, "agreement_with_float": float(np.mean(preds == float_preds)),
                     "size_bytes": files[key].stat().st_size}
    samples = _interleaved(runtimes, xte[:1].reshape(shape), repeats)
    for key, s in samples.items():
        rows[key]["latency"] = summarize(s).to_json()
    return {"model": name, "rows": rows}


def bench_mobilenet_224(work: Path, repeats: int) -> dict:
    spec = "zoo:mobilenet_v2"
    fp32 = edgec.compile(spec, target="x86_64-fp32", out_dir=work, formats=["tflite"]).paths["tflite"]
    int8 = edgec.compile(spec, target=TARGET, out_dir=work, formats=["tflite"], calibration="random",
                         calib_limit=16).paths["tflite"]
    rts = {"fp32": LiteRTRuntime(fp32), "int8": LiteRTRuntime(int8)}
    shape = tuple(rts["fp32"].inputs[0].shape)
    calib = work / "random_224.npz"
    np.savez(calib, x=np.random.default_rng(1).standard_normal((16, *shape[1:])).astype(np.float32))
    tf_int8 = _tf_int8(fp32, calib, work / "mobilenet_v2_224.tf_int8.tflite")
    if tf_int8 is not None:
        rts["tf_int8"] = LiteRTRuntime(tf_int8)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    s = _interleaved(rts, x, repeats)
    result = {k: summarize(v).to_json() for k, v in s.items()}
    for key in ("int8", "tf_int8"):
        if key in s:
            ratio = median_ratio(s["fp32"], s[key], paired=True)
            result[f"speedup_fp32_over_{key}"] = {"ratio": ratio.ratio, "ci": list(ratio.ci)}
    result["sizes"] = {"fp32": fp32.stat().st_size, "int8": int8.stat().st_size}
    return result


def _table(result: dict) -> str:
    lines = []
    for m in result["models"]:
        lines.append(f"\n{m['model']} (MNIST test, 1,000 images; calibration: 200 training images)\n")
        lines.append("| model | top-1 | agreement with float | latency median ms [95% CI] | size |")
        lines.append("| --- | --- | --- | --- | --- |")
        for key, r in m["rows"].items():
            lat = r["latency"]
            lines.append(f"| {key} | {r['top1']:.3f} | {r['agreement_with_float']:.3f} | "
                         f"{lat['median_ms']:.3f} [{lat['median_ci_ms'][0]:.3f}, {lat['median_ci_ms'][1]:.3f}] | "
                         f"{r['size_bytes'] / 1024:.0f} KiB |")
    mb = result.get("mobilenet_v2_224")
    if mb:
        lines.append(f"\nMobileNet v2 224x224 in LiteRT (random weights), fp32 {mb['fp32']['median_ms']:.2f} ms:")
        for key, label in (("int8", "edgec int8"), ("tf_int8", "TFLite converter int8")):
            if key in mb:
                sp = mb[f"speedup_fp32_over_{key}"]
                lines.append(f"  {label} {mb[key]['median_ms']:.2f} ms, speed-up {sp['ratio']:.2f}x "
                             f"[{sp['ci'][0]:.2f}, {sp['ci'][1]:.2f}]")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenet_v2,resnet18")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--no-224", action="store_true", help="skip the MobileNet v2 224 latency comparison")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "int8.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {"models": [bench_model(m, work, args.repeats) for m in args.models.split(",")]}
        if not args.no_224:
            result["mobilenet_v2_224"] = bench_mobilenet_224(work, max(50, args.repeats // 4))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(_table(result))
    print(f"\n(json: {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
