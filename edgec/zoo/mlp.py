"""A small multilayer perceptron on a flattened image (1 x 784 for MNIST by default)."""

from __future__ import annotations

import torch
from torch import nn

from edgec.errors import EdgecError
from edgec.zoo.layers import check_positive
from edgec.zoo.registry import flat_image_input, register


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: int, layers: int, num_classes: int):
        super().__init__()
        body: list[nn.Module] = []
        for i in range(layers):
            body += [nn.Linear(in_features if i == 0 else hidden, hidden), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.classifier = nn.Linear(hidden if layers else in_features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # keeps activations O(1)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


@register("mlp", "MLP on a flattened image: Linear+ReLU hidden layers, linear classifier", flat_image_input)
def mlp(*, num_classes: int = 10, resolution: int = 28, in_channels: int = 1, hidden: int = 256,
        layers: int = 2) -> nn.Module:
    check_positive("mlp", num_classes=num_classes, resolution=resolution, in_channels=in_channels,
                   hidden=hidden)
    if layers < 0:
        raise EdgecError(f"zoo model 'mlp': layers must be 0 or more, got {layers}")
    return MLP(in_channels * resolution * resolution, hidden, layers, num_classes)
