"""Calibration: run the float graph over representative inputs and measure activation ranges.

Data sources: .npz / .npy arrays, a folder of images with a preprocessing spec, any Python
iterable (API), or the explicit string "random" for latency-only work (the report then says
accuracy is unknown). The statistics of every float tensor are computed inside one
onnxruntime session (statistics_graph), several samples per call where the graph allows it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import onnx
import onnx_ir as ir

from edgec.errors import EdgecError
from edgec.ir import input_specs, to_proto
from edgec.quantization.batching import BatchedRunner, batch_size_for
from edgec.quantization.observers import METHODS, TensorObserver, needs_histogram
from edgec.quantization.statistics_graph import observe, reducing_graph, reductions_agree, static_shapes

Progress = Callable[[str, int, int], None]  # (phase, done, total)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".webp")


class CalibrationError(EdgecError):
    """Missing, empty or mis-shaped calibration data; says how to give usable data."""


HOW_TO = (
    "give calibration data: --calib data.npz (arrays shaped like the inputs, stacked on axis 0), "
    "--calib images/ (a folder of images, with --calib-preprocess), or calibration=<iterable> in the API; "
    "--calib random is accepted for latency-only work (accuracy then unknown)"
)


@dataclasses.dataclass
class CalibrationSet:
    samples: list[list[np.ndarray]]  # sample -> one array per model input, shaped like the input
    source: str
    is_random: bool = False

    def __len__(self) -> int:
        return len(self.samples)


def load_calibration(source: Any, model: ir.Model, preprocess: str | None = None,
                     limit: int | None = None, seed: int = 0) -> CalibrationSet:
    specs = input_specs(model)
    if source is None:
        raise CalibrationError(f"an integer target needs calibration data; {HOW_TO}")
    if isinstance(source, str) and source == "random":
        count = limit or 32
        rng = np.random.default_rng(seed)
        samples = [[rng.standard_normal(s).astype(d) for _, s, d in specs] for _ in range(count)]
        return CalibrationSet(samples, "random", is_random=True)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise CalibrationError(f"{path}: calibration data not found; {HOW_TO}")
        if path.is_dir():
            arrays = [_load_image_folder(path, specs, preprocess)]
        else:
            arrays = _arrays_from_file(path, specs)
        samples = _split_samples(arrays, specs, str(path))
    elif isinstance(source, np.ndarray) or hasattr(source, "detach"):
        # One stacked array (N, ...) for a single-input model, not an iterable of samples.
        arr = source.detach().cpu().numpy() if hasattr(source, "detach") else source
        samples = _split_samples([arr], specs, "the calibration array")
    else:
        samples = _samples_from_iterable(source, specs)
    if limit:
        samples = samples[:limit]
    if not samples:
        raise CalibrationError(f"{source}: the calibration set is empty; {HOW_TO}")
    return CalibrationSet(samples, str(source) if isinstance(source, (str, Path)) else type(source).__name__)


def unusable(what: Any, why: str) -> CalibrationError:
    return CalibrationError(f"cannot use {what} as calibration data: {why}")


def check_calibration_file(source: Any, preprocess: str | None = None) -> None:
    """Before any work: a calibration file or image folder must be readable and hold finite numbers.
    Whether its arrays fit the model's inputs is checked once the model is imported."""
    if not isinstance(source, (str, Path)) or source == "random":
        return
    path = Path(source)
    if not path.exists():
        raise CalibrationError(f"{path}: calibration data not found; {HOW_TO}")
    if path.is_dir():
        files = _image_files(path)
        parse_preprocess(preprocess)
        for f in files:
            _open_image(f).close()
        return
    _arrays_from_file(path, None)


def _arrays_from_file(path: Path, specs) -> list[np.ndarray]:
    if path.suffix not in (".npz", ".npy"):
        raise unusable(path, f"unknown calibration file type '{path.suffix}'; {HOW_TO}")
    import zipfile

    if path.suffix == ".npz" and not zipfile.is_zipfile(path):
        raise unusable(path, "not a .npz archive (no zip structure); is it truncated, or a different format?")
    try:
        arrays = _arrays_from_npz(path, specs) if path.suffix == ".npz" else {"array": np.load(path, allow_pickle=False)}
    except CalibrationError:
        raise
    except ValueError as exc:  # object arrays (pickles) are refused by allow_pickle=False
        why = ("it holds Python objects (pickled), not numbers" if "pickle" in str(exc)
               else f"{_first_line(exc)}; is it truncated?")
        raise unusable(path, why) from None
    except Exception as exc:  # BadZipFile, EOFError, OSError, ...: truncated or not an array file
        raise unusable(path, f"not a readable {path.suffix} file ({type(exc).__name__}: {_first_line(exc)}); "
                             "is it truncated?") from None
    for key, arr in arrays.items():
        check_values(arr, path if len(arrays) == 1 else f"{path} (array '{key}')")
    return list(arrays.values())


def check_values(arr: Any, what: Any) -> np.ndarray:
    """Numbers, finite, at least one sample: anything else would quantize nonsense (or crash)."""
    try:
        arr = np.asarray(arr)
    except Exception as exc:
        raise unusable(what, f"not an array ({_first_line(exc)})") from None
    if arr.dtype.kind not in "biuf":
        kind = {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers",
                "M": "dates", "m": "time spans", "V": "records"}.get(arr.dtype.kind, "non-numbers")
        raise unusable(what, f"it holds {kind} (dtype {arr.dtype}); expected real numbers")
    if arr.ndim == 0:
        raise unusable(what, "it holds a single number (a 0-d array); expected samples stacked on axis 0")
    if arr.size == 0:
        raise unusable(what, f"it is empty (shape {list(arr.shape)})")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise unusable(what, f"it holds {non_finite(arr)}, the first at index {list(first)}; "
                                 "remove or fix those samples")
    return arr


def non_finite(arr: np.ndarray) -> str:
    """'2 NaN and 1 infinite values' (the parts that occur)."""
    counts = [(int(np.isnan(arr).sum()), "NaN"), (int(np.isinf(arr).sum()), "infinite")]
    parts = [f"{n} {kind}" for n, kind in counts if n]
    return " and ".join(parts) + (" value" if sum(n for n, _ in counts) == 1 else " values")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _arrays_from_npz(path: Path, specs) -> dict[str, np.ndarray]:
    """The arrays a model's inputs read (all of them when specs is None, before import)."""
    with np.load(path, allow_pickle=False) as data:
        if not hasattr(data, "keys"):
            raise unusable(path, "it is a .npy array saved under a .npz name; rename it to .npy")
        keys = list(data.keys())
        if not keys:
            raise unusable(path, "the archive holds no arrays")
        if specs is None:
            return {k: data[k] for k in keys}
        names = [n for n, _, _ in specs]
        if all(n in keys for n in names):
            return {n: data[n] for n in names}
        if len(specs) == 1 and len(keys) >= 1:
            # The conventional single-input file: one array (x, arr_0, images, ...). Prefer 'x'/'input'.
            key = next((k for k in ("x", "input", "images", "arr_0") if k in keys), keys[0])
            return {key: data[key]}
        raise unusable(path, f"expected arrays named {', '.join(names)}; found {', '.join(keys)}")


def _split_samples(arrays: list[np.ndarray], specs, what: str) -> list[list[np.ndarray]]:
    """Arrays stacked on axis 0 (N, *input_shape[1:]) -> per-sample lists shaped like the inputs."""
    per_input = []
    if len(arrays) < len(specs):
        raise unusable(what, f"the model has {len(specs)} inputs ({', '.join(n for n, _, _ in specs)}); "
                             f"got arrays for {len(arrays)}")
    for arr, (name, shape, dtype) in zip(arrays, specs):
        arr = check_values(arr, what)
        shape = tuple(shape)
        if arr.ndim != len(shape) and not (shape[0] == 1 and arr.ndim >= 2):
            raise unusable(what, f"the array for input '{name}' has shape {list(arr.shape)}; "
                                 f"expected (N, {', '.join(map(str, shape[1:]))}) stacked samples")
        if arr.shape[1:] == shape[1:] and shape[0] == 1:
            chunks = [arr[i:i + 1] for i in range(arr.shape[0])]
        elif arr.shape == shape:
            chunks = [arr]
        elif arr.shape[0] % shape[0] == 0 and arr.shape[1:] == shape[1:]:
            chunks = [arr[i:i + shape[0]] for i in range(0, arr.shape[0], shape[0])]
        elif int(np.prod(arr.shape[1:])) == int(np.prod(shape[1:])) and shape[0] == 1:
            chunks = [arr[i:i + 1].reshape(shape) for i in range(arr.shape[0])]  # e.g. flat MNIST rows
        else:
            raise unusable(what, f"the array for input '{name}' has shape {list(arr.shape)}; "
                                 f"expected (N, {', '.join(map(str, shape[1:]))}) stacked samples")
        per_input.append([c.astype(dtype) for c in chunks])
    counts = {len(p) for p in per_input}
    if len(counts) != 1:
        raise unusable(what, f"its inputs have different sample counts {sorted(counts)}")
    return [list(s) for s in zip(*per_input)]


def _samples_from_iterable(source: Iterable, specs) -> list[list[np.ndarray]]:
    try:
        items = list(source)
    except TypeError:
        raise CalibrationError(f"calibration must be iterable, got {type(source).__name__}; {HOW_TO}") from None
    batches: list[list[np.ndarray]] = []
    for item in items:
        if isinstance(item, dict):
            missing = [n for n, _, _ in specs if n not in item]
            if missing:
                raise unusable("the calibration iterable", f"a sample has no input '{missing[0]}' "
                                                           f"(it has {', '.join(map(str, item)) or 'nothing'})")
            item = [item[n] for n, _, _ in specs]
        elif not isinstance(item, (list, tuple)):
            item = [item]
        if len(item) > len(specs):
            item = item[: len(specs)]  # (x, label) pairs from a data loader: keep the inputs
        arrays = [np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t) for t in item]
        batches.extend(_split_samples(arrays, specs, "the calibration iterable"))
    return batches


def parse_preprocess(spec: str | None) -> dict:
    """'resize=224,mean=0.485:0.456:0.406,std=0.229:0.224:0.225,scale=255,gray' -> options."""
    opts: dict = {"scale": 255.0, "mean": None, "std": None, "gray": False, "resize": None}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, _, val = part.partition("=")
        try:
            if key in ("mean", "std"):
                opts[key] = [float(v) for v in val.split(":")]
            elif key == "scale":
                opts[key] = float(val)
            elif key == "resize":
                opts[key] = int(val)
            elif key == "gray":
                opts[key] = True
            else:
                raise ValueError
        except ValueError:
            raise CalibrationError(
                f"--calib-preprocess '{part}': expected resize=N, mean=a:b:c, std=a:b:c, scale=S or gray"
            ) from None
    return opts


def _load_image_folder(folder: Path, specs, preprocess: str | None) -> np.ndarray:
    from PIL import Image

    if len(specs) != 1:
        raise CalibrationError(f"{folder}: an image folder calibrates single-input models only; use .npz")
    _, shape, dtype = specs[0]
    if len(shape) != 4:
        raise CalibrationError(f"{folder}: images need a 4-D NCHW input; the model's is {list(shape)}")
    _, channels, height, width = shape
    opts = parse_preprocess(preprocess)
    files = _image_files(folder)
    images = []
    for f in files:
        with _open_image(f) as img:
            img = img.convert("L" if channels == 1 or opts["gray"] else "RGB")
        img = img.resize((width, height), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / opts["scale"]
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        if arr.shape[0] != channels:
            arr = np.repeat(arr[:1], channels, axis=0)
        if opts["mean"] is not None:
            arr = arr - np.asarray(opts["mean"], np.float32).reshape(-1, 1, 1)
        if opts["std"] is not None:
            arr = arr / np.asarray(opts["std"], np.float32).reshape(-1, 1, 1)
        images.append(arr.astype(dtype))
    return np.stack(images)


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}); {HOW_TO}")
    return files


def _open_image(path: Path):
    """The decoded image (PIL decodes lazily: load() here surfaces truncated or corrupt files)."""
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
        return img
    except Exception as exc:  # UnidentifiedImageError, OSError (truncated), DecompressionBombError
        raise unusable(path, f"not a readable image ({type(exc).__name__}: {_first_line(exc)})") from None


def float_tensor_names(model: ir.Model) -> list[str]:
    """Every float activation: graph inputs and node outputs (not weights)."""
    names = [v.name for v in model.graph.inputs if v.dtype == ir.DataType.FLOAT]
    for node in model.graph:
        if node.op_type == "Constant":
            continue
        names += [o.name for o in node.outputs if o.dtype == ir.DataType.FLOAT and o.name]
    return list(dict.fromkeys(names))


def _exposing_proto(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    existing = {o.name for o in out.graph.output}
    for name in names:
        if name not in existing:
            out.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return out


def exposing_session(model: ir.Model, names: list[str]):
    """An onnxruntime session whose outputs are the graph's plus every tensor in `names`."""
    sess = _session(_exposing_proto(to_proto(model), names))
    return sess, [o.name for o in sess.get_outputs()]


@dataclasses.dataclass
class Statistics:
    ranges: dict[str, tuple[float, float]]  # tensor -> calibrated (lo, hi)
    minmax: dict[str, tuple[float, float]]  # tensor -> observed (min, max), to report clipping
    channel_means: dict[str, np.ndarray]  # tensor -> per-channel mean, for bias correction
    # tensor -> per-channel observed (min, max), where the tensor has channels
    channel_ranges: dict[str, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    method: str = "minmax"

    def with_channels_scaled(self, factors: dict[str, np.ndarray]) -> Statistics | None:
        """The statistics of the same graph with channel c of tensor t multiplied by
        factors[t][c] > 0 (how cross-layer equalization's graph relates to the original),
        without running it. None where that would not be exact: ranges from a histogram
        method, or a rescaled tensor observed without per-channel extremes."""
        if self.method != "minmax":
            return None
        ranges, minmax = dict(self.ranges), dict(self.minmax)
        means, channel_ranges = dict(self.channel_means), dict(self.channel_ranges)
        for name, factor in factors.items():
            if name not in self.minmax:
                continue  # not an observed tensor
            factor = np.asarray(factor, np.float32)
            if name not in channel_ranges or channel_ranges[name][0].shape != factor.shape or np.any(factor <= 0):
                return None
            lo, hi = (c * factor for c in channel_ranges[name])
            channel_ranges[name] = (lo, hi)
            ranges[name] = minmax[name] = (float(lo.min()), float(hi.max()))
            if name in means:
                means[name] = means[name] * factor
        return Statistics(ranges, minmax, means, channel_ranges, self.method)


    def merged(self, other: Statistics) -> Statistics:
        """These statistics plus `other`'s for tensors these lack (the same graph and data)."""
        def union(mine: dict, theirs: dict) -> dict:
            return {**theirs, **mine}

        return Statistics(union(self.ranges, other.ranges), union(self.minmax, other.minmax),
                          union(self.channel_means, other.channel_means),
                          union(self.channel_ranges, other.channel_ranges), self.method)


# Bytes of activations one onnxruntime call may hold: sets how many samples go per call.
BATCH_BYTES = 256 << 20


# Ops whose input 0 feeds bias correction (the per-channel mean E[x]).
WEIGHT_LAYER_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def collect_statistics(model: ir.Model, data: CalibrationSet, method: str = "minmax", percentile: float = 99.99,
                       progress: Progress | None = None, tensors: list[str] | None = None) -> Statistics:
    """Ranges and observed extremes (overall and per channel) of the float activations of the
    graph (`tensors`, default all of them), and the channel means of the weight layers' inputs.

    Observing fewer tensors is faster: onnxruntime can then fuse the unobserved ones away.
    One pass computes the reductions inside the graph (statistics_graph); the histogram
    methods add a second pass over the exposed activations. Both run several samples per
    onnxruntime call where the graph allows a batch (batching)."""
    if method not in METHODS:
        raise CalibrationError(f"unknown --calib-method '{method}'; expected one of {', '.join(METHODS)}")
    names = float_tensor_names(model)
    if tensors is not None:
        wanted = set(tensors)
        names = [n for n in names if n in wanted]
    observers = {n: TensorObserver(abs_histogram=method == "entropy") for n in names}
    proto = to_proto(model)
    shapes = static_shapes(model, proto)
    sums = {n.inputs[0].name for n in model.graph if n.op_type in WEIGHT_LAYER_OPS and n.inputs and n.inputs[0]}
    _observe_reductions(proto, shapes, names, sums, data.samples, observers, progress)
    if needs_histogram(method):
        _observe_histograms(proto, shapes, names, data.samples, observers, progress)
    means = {n: obs.channel_mean() for n, obs in observers.items()}
    channel_ranges = {n: obs.channel_range() for n, obs in observers.items()}
    return Statistics(
        ranges={n: obs.range(method, percentile) for n, obs in observers.items()},
        minmax={n: (obs.lo, obs.hi) for n, obs in observers.items()},
        channel_means={n: m for n, m in means.items() if m is not None},
        channel_ranges={n: r for n, r in channel_ranges.items() if r is not None},
        method=method,
    )


def _session(proto: onnx.ModelProto, optimize: bool = False):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    opts.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _tensor_bytes(shapes: dict[str, tuple[int, ...]], names: list[str]) -> list[int]:
    # An unknown shape counts as the largest known one.
    sizes = [4 * int(np.prod(shapes[n])) if n in shapes else -1 for n in names]
    largest = max(sizes, default=0)
    return [s if s >= 0 else largest for s in sizes]


def _observe_reductions(proto, shapes, names, sums, samples, observers, progress) -> None:
    graph, reductions = reducing_graph(proto, names, shapes, sums)
    # Activations die as the graph runs: a few of the largest are alive at once.
    per_sample = 4 * max(_tensor_bytes(shapes, names), default=0)
    outputs = [o.name for o in graph.graph.output]
    # Only the reductions read the activations, so onnxruntime may optimize the graph fully
    # (fusions, blocked layouts): that changes results by float rounding, not the statistics.
    runner = BatchedRunner(graph, lambda p: _session(p, optimize=True), samples,
                           batch_size_for(per_sample, BATCH_BYTES), agree=reductions_agree(reductions, outputs))
    done = 0
    for inputs, count in runner.batches(samples):
        values = dict(zip(runner.output_names, runner.run(inputs)))
        observe(reductions, values, count, observers)
        done += count
        if progress:
            progress("calibration (ranges)", done, len(samples))


def _observe_histograms(proto, shapes, names, samples, observers, progress) -> None:
    graph = _exposing_proto(proto, names)
    # Every exposed activation is alive at the end of the call.
    per_sample = sum(_tensor_bytes(shapes, names))
    runner = BatchedRunner(graph, _session, samples, batch_size_for(per_sample, BATCH_BYTES))
    in_names = [v.name for v in proto.graph.input]
    done = 0
    for inputs, count in runner.batches(samples):
        values = dict(zip(runner.output_names, runner.run(inputs)))
        values.update((n, a) for n, a in zip(in_names, inputs) if n not in values)
        for n, obs in observers.items():
            if n in values:
                obs.update_histogram(values[n])
        done += count
        if progress:
            progress("calibration (histograms)", done, len(samples))


def collect_ranges(model: ir.Model, data: CalibrationSet, method: str = "minmax", percentile: float = 99.99,
                   progress: Progress | None = None) -> dict[str, tuple[float, float]]:
    """{tensor name: (lo, hi)} for every float activation of the graph."""
    return collect_statistics(model, data, method, percentile, progress).ranges
