"""Make a random-init model's outputs depend on its input, so verifying against it means something.

A freshly initialised network is close to degenerate: BatchNorm's default running statistics
(mean 0, var 1) do not match the real activations, so in eval mode activations blow up or die
away, and after global pooling the logits are dominated by a constant part (biases, the mean
of the pooled features) that every input shares. Two inputs then give nearly equal outputs,
and "artifact matches reference" proves little. So, seeded and deterministic:

1. BatchNorm affine parameters get a mild random spread, as a trained net's have; identity
   affines would hide bugs that swap or drop gamma/beta when folding.
2. One train-mode forward pass on a batch of random inputs, with momentum None (cumulative
   average), sets every BatchNorm's running statistics to what that batch produces.
3. The classifier is re-scaled and re-centred on that batch so that its logits have mean 0 per
   class and unit spread: what differs between inputs is what the classifier reports.
"""

from __future__ import annotations

import torch
from torch import nn

# Enough samples to centre each logit and size their spread; few enough that building a
# 224x224 ResNet-18 stays well under a second.
CALIBRATION_BATCH = 8


def calibrate(module: nn.Module, input_shape: tuple[int, ...], generator: torch.Generator) -> None:
    batch = torch.randn((CALIBRATION_BATCH, *input_shape[1:]), generator=generator)
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    classifier = getattr(module, "classifier", None)

    for bn in norms:
        _spread_affine(bn, generator)
        bn.reset_running_stats()
        bn.momentum = None

    head_inputs: list[torch.Tensor] = []
    hook = None
    if classifier is not None:
        hook = classifier.register_forward_hook(lambda _m, args, _out: head_inputs.append(args[0]))
    try:
        # One pass suffices: with a single batch the running statistics equal the batch
        # statistics train mode normalises with, so the classifier sees what eval mode will feed it.
        module.train()
        with torch.no_grad():
            module(batch)
    finally:
        if hook is not None:
            hook.remove()
        module.eval()
        for bn in norms:
            bn.momentum = 0.1  # torch's default, for whoever fine-tunes the model later

    if classifier is not None and head_inputs:
        _standardize_logits(classifier, head_inputs[0])


def _spread_affine(bn: nn.modules.batchnorm._BatchNorm, generator: torch.Generator) -> None:
    if not bn.affine:
        return
    with torch.no_grad():
        bn.weight.copy_(0.75 + 0.5 * torch.rand(bn.weight.shape, generator=generator))
        bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=generator))


def _standardize_logits(classifier: nn.Module, features: torch.Tensor) -> None:
    """logits' = (logits - mean over the batch) / spread, folded into the classifier's W and b."""
    if isinstance(classifier, nn.Conv2d):
        if classifier.kernel_size != (1, 1) or classifier.groups != 1:
            raise ValueError("only a 1x1 convolution can serve as a classifier here")
        features = features.mean(dim=(2, 3))  # (N, C, 1, 1) after global pooling
    elif isinstance(classifier, nn.Linear):
        features = features.reshape(-1, features.shape[-1])  # a Linear may see (N, tokens, C)
    else:
        raise TypeError(f"cannot calibrate a classifier of type {type(classifier).__name__}")
    weight = classifier.weight.reshape(classifier.weight.shape[0], -1)
    bias = classifier.bias if classifier.bias is not None else torch.zeros(weight.shape[0])
    with torch.no_grad():
        logits = features @ weight.T + bias
        mean = logits.mean(dim=0)
        spread = (logits - mean).pow(2).mean().sqrt()
        if spread < 1e-6:  # features that never vary: nothing to standardise
            return
        classifier.weight.div_(spread)
        new_bias = (bias - mean) / spread
        if classifier.bias is None:
            classifier.bias = nn.Parameter(new_bias)
        else:
            classifier.bias.copy_(new_bias)
