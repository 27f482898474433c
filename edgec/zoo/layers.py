"""Building blocks shared by the convolutional zoo models."""

from __future__ import annotations

from torch import nn

from edgec.errors import EdgecError


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of `divisor` (as the MobileNet reference code
    does), never dropping more than 10% of it: hardware kernels work on channel blocks."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """conv (no bias: BatchNorm has one) -> BatchNorm -> optional activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, activation: type[nn.Module] | None = nn.ReLU):
        layers = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if activation is not None:
            layers.append(activation())
        super().__init__(*layers)


def init_conv_net(module: nn.Module) -> None:
    """He init for convolutions (fan_out, as torchvision's CNNs), small normal for linears."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def check_positive(model: str, **sizes: float) -> None:
    for key, value in sizes.items():
        if value <= 0:
            raise EdgecError(f"zoo model '{model}': option '{key}' must be positive, got {value}")


def check_resolution(model: str, resolution: int, multiple: int, why: str) -> None:
    if resolution <= 0 or resolution % multiple:
        raise EdgecError(
            f"zoo model '{model}': resolution must be a positive multiple of {multiple} ({why}); "
            f"got {resolution}, try {max(multiple, round(resolution / multiple) * multiple)}"
        )
