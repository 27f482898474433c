"""Magnitude pruning of torch models: gradual, during training (Zhu & Gupta 2017), and one-shot.

    from edgec.training import pruning
    sched = pruning.gradual(model, final_sparsity=0.9, block=(4, 1), start=0, end=2000)
    fit(model, x, y, on_step=lambda step: sched.step())   # or call sched.step() after each optimizer step

What is pruned is what XNNPACK's sparse kernels speed up: 1x1 convolutions (groups 1) and,
with `fc=True`, fully connected layers; the first convolution and depthwise layers stay
dense (Elsen et al. 2019). Which weights go is decided by edgec.passes.prune.magnitude_mask,
the same rule the IR pass applies, in blocks of output channels (1x1, 2x1 or 4x1).

Sparsity follows the polynomial schedule s_t = s_f + (s_i - s_f) (1 - (t - t0) / (t1 - t0))^3:
it rises fast while the network can still recover and slowly near the end. Masks are
recomputed every `frequency` steps between `start` and `end` and applied after every
step, so pruned weights stay exactly zero while the rest train; from `end` on each layer
holds exactly round(final_sparsity x blocks) zero blocks. The zeros live in the weights
themselves, so export (torch.export, edgec.compile) needs nothing else.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from edgec.errors import EdgecError
from edgec.passes.prune import Block, PrunedLayer, check_sparsity, magnitude_mask, parse_block


@dataclasses.dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


def _as_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A conv [O, I, 1, 1] or linear [O, I] weight as [O, I] (a view: masking it masks the weight)."""
    return weight.reshape(weight.shape[0], -1)


def prunable_layers(model: nn.Module, block: Block = (1, 1), fc: bool = True
                    ) -> tuple[list[tuple[str, nn.Module]], list[Skipped]]:
    """(layers to prune, layers left dense with the reason), in module order."""
    chosen, skipped = [], []
    first_conv = next((name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if name == first_conv:
                why = "first convolution; stays dense"
            elif m.groups != 1:
                why = "depthwise or grouped convolution; stays dense"
            elif tuple(m.kernel_size) != (1, 1):
                why = f"{m.kernel_size[0]}x{m.kernel_size[1]} kernel; only 1x1 convolutions are pruned"
            else:
                why = None
        elif isinstance(m, nn.Linear):
            why = None if fc else "fully connected layers left dense (fc=False)"
        else:
            continue
        if why is None and m.weight.shape[0] % block[0]:
            why = f"{m.weight.shape[0]} output channels are not a multiple of the {block[0]}x{block[1]} block"
        if why:
            skipped.append(Skipped(name, why))
        else:
            chosen.append((name, m))
    return chosen, skipped


def _mask(weight: torch.Tensor, sparsity: float, block: Block) -> torch.Tensor:
    matrix = _as_matrix(weight.detach()).float().cpu().numpy()
    keep = magnitude_mask(matrix, sparsity, block)
    return torch.from_numpy(keep).to(weight.device).reshape(weight.shape)


def _record(name: str, kind: str, weight: torch.Tensor) -> PrunedLayer:
    matrix = _as_matrix(weight.detach())
    return PrunedLayer(name, kind, tuple(matrix.shape), int((matrix == 0).sum()))


def polynomial_sparsity(step: int, final: float, start: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta's schedule: `initial` before `start`, `final` from `end` on, cubic in between."""
    if step <= start:
        return initial
    if step >= end:
        return final
    progress = (step - start) / (end - start)
    return final + (initial - final) * (1.0 - progress) ** 3


class GradualPruning:
    """Masks and a step counter; call `step()` once after every optimizer step."""

    def __init__(self, model: nn.Module, final_sparsity: float, block: Block, start: int, end: int,
                 frequency: int, initial_sparsity: float, fc: bool):
        if end <= start:
            raise EdgecError(f"pruning end step {end} must come after start step {start}")
        if frequency < 1:
            raise EdgecError(f"pruning frequency {frequency}: expected at least 1 step")
        self.final_sparsity = check_sparsity(final_sparsity)
        self.initial_sparsity = check_sparsity(initial_sparsity)
        self.block = parse_block(block)
        self.start, self.end, self.frequency = start, end, frequency
        self.layers, self.skipped = prunable_layers(model, self.block, fc)
        if not self.layers:
            raise EdgecError("nothing to prune: the model has no 1x1 convolution or (with fc=True) linear layer")
        self.masks: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.sparsity = 0.0  # the target the current masks were computed for

    def sparsity_at(self, step: int) -> float:
        return polynomial_sparsity(step, self.final_sparsity, self.start, self.end, self.initial_sparsity)

    def _is_pruning_step(self, step: int) -> bool:
        return self.start <= step <= self.end and ((step - self.start) % self.frequency == 0 or step == self.end)

    @torch.no_grad()
    def step(self) -> None:
        """Advance one training step: on a pruning step recompute the masks, then zero what they cut."""
        self.steps += 1
        if self._is_pruning_step(self.steps):
            target = self.sparsity_at(self.steps)
            if target > 0 and target != self.sparsity:
                self.masks = {name: _mask(m.weight, target, self.block) for name, m in self.layers}
                self.sparsity = target
        self.apply_masks()

    @torch.no_grad()
    def apply_masks(self) -> None:
        for name, m in self.layers:
            mask = self.masks.get(name)
            if mask is not None:
                m.weight.mul_(mask)

    def report(self) -> list[PrunedLayer]:
        """Per pruned layer, how many of its weights are zero now."""
        return [_record(name, type(m).__name__, m.weight) for name, m in self.layers]


def gradual(model: nn.Module, final_sparsity: float = 0.9, block: Block | str = (4, 1), start: int = 0,
            end: int = 2000, frequency: int = 100, initial_sparsity: float = 0.0, fc: bool = True) -> GradualPruning:
    """Prune `model` gradually while it trains; see the module docstring."""
    return GradualPruning(model, final_sparsity, parse_block(block), start, end, frequency, initial_sparsity, fc)


@torch.no_grad()
def prune(model: nn.Module, sparsity: float, block: Block | str = (1, 1), fc: bool = True) -> list[PrunedLayer]:
    """One-shot magnitude pruning of a module, in place."""
    sparsity, block = check_sparsity(sparsity), parse_block(block)
    layers, _ = prunable_layers(model, block, fc)
    for _, m in layers:
        m.weight.mul_(_mask(m.weight, sparsity, block))
    return [_record(name, type(m).__name__, m.weight) for name, m in layers]


# -- torch.export programs (what `edgec prune model.pt2` edits) ----------------------------

_CONV_TARGETS = ("aten.conv2d.default", "aten.convolution.default")
_LINEAR_TARGETS = ("aten.linear.default",)


def _exported_layers(ep: "torch.export.ExportedProgram", block: Block, fc: bool
                     ) -> tuple[list[tuple[str, str]], list[Skipped]]:
    """(parameter FQN, 'Conv'|'Linear') of the prunable weights of an ExportedProgram."""
    params = ep.graph_signature.inputs_to_parameters
    user_inputs = set(ep.graph_signature.user_inputs)
    chosen, skipped = [], []
    seen_conv = False
    for node in ep.graph.nodes:
        target = str(node.target)
        if node.op != "call_function" or target not in _CONV_TARGETS + _LINEAR_TARGETS:
            continue
        weight = node.args[1]
        fqn = params.get(getattr(weight, "name", None))
        if fqn is None:
            continue
        shape = tuple(ep.state_dict[fqn].shape)
        is_conv = target in _CONV_TARGETS
        if is_conv:
            slot = 6 if target == "aten.conv2d.default" else 8  # the groups argument
            groups = node.args[slot] if len(node.args) > slot else node.kwargs.get("groups", 1)
            first, seen_conv = not seen_conv, True
            if first or getattr(node.args[0], "name", None) in user_inputs:
                why = "first convolution; stays dense"
            elif groups != 1:
                why = "depthwise or grouped convolution; stays dense"
            elif shape[2:] != (1, 1):
                why = f"{shape[2]}x{shape[3]} kernel; only 1x1 convolutions are pruned"
            else:
                why = None
        else:
            why = None if fc else "fully connected layers left dense (fc=False)"
        if why is None and shape[0] % block[0]:
            why = f"{shape[0]} output channels are not a multiple of the {block[0]}x{block[1]} block"
        if why:
            skipped.append(Skipped(fqn, why))
        else:
            chosen.append((fqn, "Conv" if is_conv else "Linear"))
    return chosen, skipped


@torch.no_grad()
def prune_exported(ep: "torch.export.ExportedProgram", sparsity: float, block: Block | str = (1, 1),
                   fc: bool = True) -> tuple[list[PrunedLayer], list[Skipped]]:
    """One-shot magnitude pruning of an ExportedProgram's 1x1 conv / linear weights, in place
    (its state_dict); save it with torch.export.save."""
    sparsity, block = check_sparsity(sparsity), parse_block(block)
    layers, skipped = _exported_layers(ep, block, fc)
    if not layers:
        raise EdgecError("nothing to prune: the program has no 1x1 convolution or (with fc) linear layer")
    pruned = []
    for fqn, kind in layers:
        weight = ep.state_dict[fqn]
        weight.mul_(_mask(weight, sparsity, block).to(weight.dtype))
        pruned.append(_record(fqn, kind, weight))
    return pruned, skipped


def prune_file(src: str | Path, dst: str | Path, sparsity: float, block: Block | str = (1, 1),
               fc: bool = True) -> dict:
    """What `edgec prune` does: prune a .pt2 (ExportedProgram) or .onnx file into `dst`, same
    format, written atomically; returns the per-layer table."""
    if str(src).startswith("zoo:"):  # the same model sources as `edgec compile`
        return _prune_zoo(str(src), Path(dst), sparsity, parse_block(block), fc)
    src, dst = Path(src), Path(dst)
    block = parse_block(block)
    if not src.exists():
        raise EdgecError(f"{src}: no such file")
    if src.suffix != dst.suffix:
        raise EdgecError(f"{dst}: write the pruned model in the input's format ({src.suffix})")
    if src.suffix == ".pt2":
        from edgec.frontends.torch_file import load_exported_program
        from edgec.fsutil import atomic_path

        ep = load_exported_program(src)
        layers, skipped = prune_exported(ep, sparsity, block, fc)
        with atomic_path(dst) as tmp:
            torch.export.save(ep, str(tmp))
        skipped_rows = [dataclasses.asdict(s) for s in skipped]
    elif src.suffix == ".onnx":
        import onnx_ir as ir

        from edgec.fsutil import atomic_write_bytes
        from edgec.ir import to_bytes
        from edgec.passes.prune import MagnitudePrune

        model = ir.load(str(src))
        pass_ = MagnitudePrune(sparsity, block, fc)
        pass_(model)
        layers = pass_.layers
        if not layers:
            raise EdgecError(f"{src}: nothing to prune: no 1x1 convolution or (with fc) fully connected layer")
        atomic_write_bytes(dst, to_bytes(model))
        skipped_rows = [{"name": r.node, "reason": r.reason} for r in pass_.refusals]
    else:
        raise EdgecError(f"{src}: edgec prune reads .pt2 (torch.export) or .onnx files")
    return {"source": str(src), "output": str(dst), "sparsity": sparsity, "block": f"{block[0]}x{block[1]}",
            "zero_fraction": zero_fraction(layers), "layers": [layer.as_dict() for layer in layers],
            "skipped": skipped_rows}


def zero_fraction(layers: list[PrunedLayer]) -> float:
    total = sum(layer.shape[0] * layer.shape[1] for layer in layers)
    return sum(layer.zeros for layer in layers) / total if total else 0.0


__all__ = ["GradualPruning", "Skipped", "gradual", "polynomial_sparsity", "prunable_layers", "prune",
           "prune_exported", "prune_file", "zero_fraction"]


def _prune_zoo(spec: str, dst: Path, sparsity: float, block, fc: bool) -> dict:
    """A zoo model, exported as compile exports it, pruned and saved as an ExportedProgram (.pt2)."""
    from edgec import zoo
    from edgec.fsutil import atomic_path

    if dst.suffix != ".pt2":
        raise EdgecError(f"{dst}: a pruned zoo model is written as an ExportedProgram; give a .pt2 path")
    name, kwargs = zoo.parse_spec(spec[len("zoo:"):])
    built = zoo.build(name, **kwargs)
    ep = torch.export.export(built.module.eval(), tuple(built.example_inputs))
    layers, skipped = prune_exported(ep, sparsity, block, fc)
    with atomic_path(dst) as tmp:
        torch.export.save(ep, str(tmp))
    return {"source": spec, "output": str(dst), "sparsity": sparsity, "block": f"{block[0]}x{block[1]}",
            "zero_fraction": zero_fraction(layers), "layers": [layer.as_dict() for layer in layers],
            "skipped": [dataclasses.asdict(s) for s in skipped]}
