"""MobileNet v2 (Sandler et al., 2018): inverted residual blocks with linear bottlenecks.

A block expands with a 1x1 conv (factor t), filters with a 3x3 depthwise conv, both ReLU6,
then projects back with a 1x1 conv and no activation; the residual is added when shape allows.
"""

from __future__ import annotations

import torch
from torch import nn

from edgec.zoo.layers import ConvBNAct, check_positive, init_conv_net, make_divisible
from edgec.zoo.registry import image_input, register

# (expansion t, output channels c, repeats n, first stride s), at width 1.0, as in the paper.
STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(in_channels, hidden, 1, activation=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),
            ConvBNAct(hidden, out_channels, 1, activation=None),
        ]
        self.layers = nn.Sequential(*layers)
        self.has_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.has_residual else y


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: float):
        super().__init__()
        channels = make_divisible(STEM_CHANNELS * width)
        layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, stride=2, activation=nn.ReLU6)]
        for expansion, out_channels, repeats, stride in STAGES:
            out_channels = make_divisible(out_channels * width)
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out_channels, stride if i == 0 else 1, expansion))
                channels = out_channels
        # The paper keeps the last conv at 1280 channels for widths below 1.
        last = make_divisible(LAST_CHANNELS * max(1.0, width))
        layers.append(ConvBNAct(channels, last, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)
        init_conv_net(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register("mobilenet_v2", "MobileNet v2: inverted residuals with linear bottlenecks, ReLU6, width multiplier",
          image_input)
def mobilenet_v2(*, num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
                 width: float = 1.0) -> nn.Module:
    check_positive("mobilenet_v2", num_classes=num_classes, resolution=resolution,
                   in_channels=in_channels, width=width)
    return MobileNetV2(num_classes, in_channels, width)
