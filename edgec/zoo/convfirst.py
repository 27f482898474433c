"""A small network of ConvFirst blocks (Lavin, "On the Efficiency of Convolutional Neural
Networks", 2024), the block the paper fuses into a single kernel.

The block follows the author's code (andravin/spio, scripts/profile_block.py):

    grouped kxk conv (group width 8, stride s, no bias) -> BN
    -> 1x1 expand (x4, no bias) -> BN -> SiLU
    -> 1x1 project (no bias) -> BN
    -> + input, when stride is 1 and the channel count is unchanged

Doing the spatial conv first, on the narrow tensor, keeps the kxk conv cheap and leaves the
expanded tensor to two 1x1 convs that a fused kernel keeps in cache. The network around the
blocks is this project's (the paper's full model is not published in that file): a strided
3x3 stem, four stages whose first block strides by 2, global average pool, linear classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from edgec.errors import EdgecError
from edgec.zoo.layers import ConvBNAct, check_positive, init_conv_net, make_divisible
from edgec.zoo.registry import image_input, register

STEM_CHANNELS = 32
# (channels, blocks) per stage at width 1.0; each stage starts with a stride-2 block.
STAGES = [(32, 1), (64, 2), (128, 3), (256, 2)]


class ConvFirstBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 group_width: int = 8, expansion: int = 4):
        super().__init__()
        mid_channels = in_channels * expansion
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size, stride, padding=kernel_size // 2,
                              groups=in_channels // group_width, bias=False)
        self.conv_bn = nn.BatchNorm2d(in_channels)
        self.expand = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(mid_channels)
        self.act = nn.SiLU()
        self.project = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)
        self.has_residual = in_channels == out_channels and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_bn(self.conv(x))
        y = self.act(self.expand_bn(self.expand(y)))
        y = self.project_bn(self.project(y))
        return x + y if self.has_residual else y


class ConvFirstNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int, width: float, kernel_size: int,
                 group_width: int, expansion: int):
        super().__init__()
        channels = make_divisible(STEM_CHANNELS * width, group_width)
        self.stem = ConvBNAct(in_channels, channels, 3, stride=2, activation=nn.SiLU)
        blocks = []
        for stage_channels, repeats in STAGES:
            out_channels = make_divisible(stage_channels * width, group_width)
            for i in range(repeats):
                blocks.append(ConvFirstBlock(channels, out_channels, kernel_size, 2 if i == 0 else 1,
                                             group_width, expansion))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_conv_net(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


@register("convfirst", "ConvFirst blocks (grouped kxk conv, then 1x1 expand/SiLU/project, residual)",
          image_input)
def convfirst(*, num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
              width: float = 1.0, kernel_size: int = 3, group_width: int = 8, expansion: int = 4) -> nn.Module:
    check_positive("convfirst", num_classes=num_classes, resolution=resolution, in_channels=in_channels,
                   width=width, group_width=group_width, expansion=expansion)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise EdgecError(f"zoo model 'convfirst': kernel_size must be odd (same padding), got {kernel_size}")
    return ConvFirstNet(num_classes, in_channels, width, kernel_size, group_width, expansion)
