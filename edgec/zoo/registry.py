"""The zoo's registry: model names, their options, and building a calibrated model by name.

A model file registers a factory whose keyword-only parameters (with their defaults) are the
model's options; `build` validates and coerces the caller's options against that signature,
constructs the module under a fixed seed, calibrates it (see calibrate.py) and returns it in
eval mode with a matching example input.
"""

from __future__ import annotations

from pathlib import Path

import dataclasses
import inspect
from typing import Any, Callable
from urllib.parse import parse_qsl

import torch
from torch import nn

from edgec.errors import EdgecError
from edgec.zoo.calibrate import calibrate

# Every model is asked these; a model that has no use for one rejects only a non-None value, so
# callers can pass them uniformly (e.g. num_classes=10 to every image model).
COMMON_OPTIONS = ("num_classes", "resolution", "in_channels")

InputShapeFn = Callable[[dict[str, Any]], tuple[int, ...]]


def image_input(config: dict[str, Any]) -> tuple[int, ...]:
    return (1, config["in_channels"], config["resolution"], config["resolution"])


def flat_image_input(config: dict[str, Any]) -> tuple[int, ...]:
    return (1, config["in_channels"] * config["resolution"] ** 2)


def token_input(config: dict[str, Any]) -> tuple[int, ...]:
    return (1, config["seq_len"], config["dim"])


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    factory: Callable[..., nn.Module]
    input_shape: InputShapeFn

    def defaults(self) -> dict[str, Any]:
        params = inspect.signature(self.factory).parameters.values()
        return {p.name: p.default for p in params}


@dataclasses.dataclass
class ZooModel:
    module: nn.Module  # eval mode, BatchNorm statistics calibrated
    example_inputs: tuple[torch.Tensor, ...]  # batch 1, seeded
    name: str
    description: str
    input_shape: tuple[int, ...]
    config: dict[str, Any]  # every option as used, seed included


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, description: str, input_shape: InputShapeFn):
    """Decorator for a factory `f(*, option=default, ...) -> nn.Module`."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelEntry(name, description, factory, input_shape)
        return factory

    return decorate


def names() -> list[str]:
    return sorted(_REGISTRY)


def describe(name: str) -> dict[str, Any]:
    """Description, default input shape and options of a model, without building it."""
    entry = _entry(name)
    defaults = entry.defaults()
    return {
        "name": name,
        "description": entry.description,
        "input_shape": entry.input_shape(defaults),
        "options": defaults,
    }


def build(name: str, *, num_classes: int | None = None, resolution: int | None = None,
          in_channels: int | None = None, seed: int = 0, weights: str | None = None,
          **options: Any) -> ZooModel:
    """Build zoo model `name`, calibrated (see calibrate.py), in eval mode.

    The common sizes left as None take the model's defaults; `options` are the model's own
    (width, depth, ...: see describe(name)["options"]). Unknown names or options, and values
    of the wrong type, raise EdgecError naming them. Same seed, same weights and example input.
    """
    entry = _entry(name)
    common = {"num_classes": num_classes, "resolution": resolution, "in_channels": in_channels}
    given = {k: v for k, v in common.items() if v is not None} | options
    if weights is not None:
        return _build_trained(entry, weights, _validated(entry, given))
    config = entry.defaults() | _validated(entry, given)
    seed = _coerce(name, "seed", seed, 0)

    # fork_rng: building must not disturb the caller's global RNG, and must not depend on it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = entry.factory(**config)
    input_shape = tuple(entry.input_shape(config))
    calibrate(module, input_shape, torch.Generator().manual_seed(seed))
    example = torch.randn(input_shape, generator=torch.Generator().manual_seed(seed + 1))
    return ZooModel(module.eval(), (example,), name, entry.description, input_shape,
                    config | {"seed": seed})


WEIGHTS_DIR = Path(__file__).parent / "weights"


def trained_weights(name: str) -> list[str]:
    """Names of the trained weight sets shipped for zoo model `name` (e.g. ['mnist'])."""
    return sorted(p.name[len(name) + 1:-3] for p in WEIGHTS_DIR.glob(f"{name}-*.pt"))


def _build_trained(entry: "ModelEntry", weights: str, given: dict[str, Any]) -> ZooModel:
    """A zoo model with shipped trained weights; its options are those it was trained with."""
    path = WEIGHTS_DIR / f"{entry.name}-{weights}.pt"
    if not path.is_file():
        have = trained_weights(entry.name)
        raise EdgecError(f"zoo model '{entry.name}' has no '{weights}' weights; "
                         f"available: {', '.join(have) if have else 'none'}")
    saved = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain dicts only
    config = saved["config"]
    clash = {k: v for k, v in given.items() if config.get(k) != v}
    if clash:
        raise EdgecError(f"zoo model '{entry.name}' with '{weights}' weights was trained with "
                         f"{', '.join(f'{k}={config.get(k)}' for k in clash)}; drop or match those options")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = entry.factory(**config)
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in saved["state_dict"].items()})
    input_shape = tuple(entry.input_shape(config))
    example = torch.from_numpy(saved["example_input"].numpy()) if "example_input" in saved else \
        torch.randn(input_shape, generator=torch.Generator().manual_seed(1))
    return ZooModel(module.eval(), (example.float(),), entry.name, entry.description, input_shape,
                    config | {"weights": weights, "metrics": saved.get("metrics", {})})


def save_trained(module: nn.Module, name: str, weights: str, config: dict[str, Any],
                 example_input: torch.Tensor, metrics: dict[str, float]) -> Path:
    """Ship trained weights in half precision: the repo stays small, and fp16 rounding of
    weights changes MNIST accuracy by far less than a test image."""
    WEIGHTS_DIR.mkdir(exist_ok=True)
    path = WEIGHTS_DIR / f"{name}-{weights}.pt"
    state = {k: v.half() if v.is_floating_point() else v for k, v in module.state_dict().items()}
    torch.save({"config": {k: v for k, v in config.items() if k not in ("seed", "weights", "metrics")},
                "state_dict": state, "example_input": example_input.half(), "metrics": metrics}, path)
    return path


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """'mobilenet_v2?resolution=96&num_classes=10' -> ('mobilenet_v2', {'resolution': 96, ...}).

    The part after 'zoo:' in the CLI. Values are coerced to the option's type and checked here,
    so a typo fails before any work starts.
    """
    name, _, query = spec.partition("?")
    entry = _entry(name.strip())
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise EdgecError(f"zoo spec '{spec}': options must look like NAME?key=value&key=value") from None
    options = dict(pairs)
    seed = options.pop("seed", None)
    weights = options.pop("weights", None)
    kwargs = _validated(entry, options)
    if weights is not None:
        kwargs["weights"] = weights
    if seed is not None:
        kwargs["seed"] = _coerce(entry.name, "seed", seed, 0)
    return entry.name, kwargs


def _entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise EdgecError(f"unknown zoo model '{name}'; known models: {', '.join(names())}")
    return _REGISTRY[name]


def _validated(entry: ModelEntry, given: dict[str, Any]) -> dict[str, Any]:
    defaults = entry.defaults()
    out = {}
    for key, value in given.items():
        if key not in defaults:
            raise EdgecError(
                f"zoo model '{entry.name}' has no option '{key}'; "
                f"its options are: {', '.join(f'{k}={v}' for k, v in defaults.items())}, seed"
            )
        out[key] = _coerce(entry.name, key, value, defaults[key])
    return out


def _coerce(model: str, key: str, value: Any, default: Any) -> Any:
    """Give `value` the type of the option's default; strings come from the CLI spec."""
    want = int if default is None else type(default)  # None defaults are optional sizes
    try:
        if want is bool:
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
                return value.lower() in ("1", "true", "yes")
            if isinstance(value, bool):
                return value
        elif want is int and not isinstance(value, bool):
            if isinstance(value, int):
                return value
            if isinstance(value, str):
                return int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
        elif want is float and not isinstance(value, bool):
            if isinstance(value, (int, float, str)):
                return float(value)
        elif want is str and isinstance(value, str):
            return value
    except ValueError:
        pass
    raise EdgecError(f"zoo model '{model}': option '{key}' must be {want.__name__}, got {value!r}")
