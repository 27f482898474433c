"""MobileNet v1 (Howard et al., 2017): a stem conv, then 13 depthwise-separable blocks.

Each block is a 3x3 depthwise conv and a 1x1 pointwise conv, both with BatchNorm and ReLU6
(ReLU6 as in the TensorFlow reference models that TFLite's kernels are tuned for). `width` is
the paper's width multiplier alpha.
"""

from __future__ import annotations

import torch
from torch import nn

from edgec.zoo.layers import ConvBNAct, check_positive, init_conv_net, make_divisible
from edgec.zoo.registry import image_input, register

# (pointwise output channels, depthwise stride) for the 13 blocks, at width 1.0.
BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


class MobileNetV1(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: float):
        super().__init__()
        channels = make_divisible(32 * width)
        layers: list[nn.Module] = [ConvBNAct(in_channels, channels, 3, stride=2, activation=nn.ReLU6)]
        for out_channels, stride in BLOCKS:
            out_channels = make_divisible(out_channels * width)
            layers.append(nn.Sequential(
                ConvBNAct(channels, channels, 3, stride, groups=channels, activation=nn.ReLU6),
                ConvBNAct(channels, out_channels, 1, activation=nn.ReLU6),
            ))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_conv_net(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register("mobilenet_v1", "MobileNet v1: depthwise-separable convs, ReLU6, width multiplier", image_input)
def mobilenet_v1(*, num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
                 width: float = 1.0) -> nn.Module:
    check_positive("mobilenet_v1", num_classes=num_classes, resolution=resolution,
                   in_channels=in_channels, width=width)
    return MobileNetV1(num_classes, in_channels, width)
