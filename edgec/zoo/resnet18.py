"""ResNet-18 (He et al., 2016): a 7x7 stem and max pool, four stages of two BasicBlocks.

A BasicBlock is two 3x3 conv+BatchNorm layers around a ReLU, plus the input (through a
strided 1x1 conv+BatchNorm where the shape changes), then ReLU. `width` scales every
stage's channels (0.25 gives a 16-32-64-128 network for quick tests).
"""

from __future__ import annotations

import torch
from torch import nn

from edgec.zoo.layers import ConvBNAct, check_positive, init_conv_net, make_divisible
from edgec.zoo.registry import image_input, register

STAGE_CHANNELS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 3, stride)
        self.conv2 = ConvBNAct(out_channels, out_channels, 3, activation=None)
        self.shortcut = (
            ConvBNAct(in_channels, out_channels, 1, stride, activation=None)
            if stride != 1 or in_channels != out_channels else nn.Identity()
        )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: float):
        super().__init__()
        channels = make_divisible(STAGE_CHANNELS[0] * width)
        self.stem = nn.Sequential(ConvBNAct(in_channels, channels, 7, stride=2),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        stages = []
        for index, stage_channels in enumerate(STAGE_CHANNELS):
            out_channels = make_divisible(stage_channels * width)
            blocks = []
            for i in range(BLOCKS_PER_STAGE):
                stride = 2 if index > 0 and i == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_conv_net(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


@register("resnet18", "ResNet-18: BasicBlock residual stages, width multiplier", image_input)
def resnet18(*, num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
             width: float = 1.0) -> nn.Module:
    check_positive("resnet18", num_classes=num_classes, resolution=resolution,
                   in_channels=in_channels, width=width)
    return ResNet18(num_classes, in_channels, width)
