"""VanillaNet (Chen et al., 2023) in its deep-TRAINING form, with the reference's switch_to_deploy.

Follows the structure of the reference code (github.com/huawei-noah/VanillaNet,
models/vanillanet.py), module names included, so the two can be read side by side:

    stem1:  conv 4x4 stride 4 + BN           cls1: avg pool, conv 1x1 + BN
            leaky_relu(slope = act_learn)          leaky_relu(slope = act_learn)
    stem2:  conv 1x1 + BN, SeriesActivation  cls2: conv 1x1
    stages[i] (Block): conv1 = conv 1x1 + BN, leaky_relu(act_learn), conv2 = conv 1x1 + BN,
                       max pool (stride), SeriesActivation

`act_learn` is the paper's lambda: leaky_relu with slope lambda is ReLU at 0 and the identity
at 1. Deep training raises it from 0 to 1; at 1 each conv pair is linear and
`switch_to_deploy()` merges it into one conv (BatchNorms folded), so the shallow deploy net
computes exactly what the training form computes at lambda = 1.

SeriesActivation is the series-informed activation: ReLU, then a (2n+1)x(2n+1) depthwise
conv (n = act_num) whose BN folds into it at deploy. Its kernel is a plain Parameter applied
with F.conv2d, as in the reference, so only the 1x1/4x4 convs are nn.Conv2d modules: the
training form has 2 + 2*len(stages) + 2 of them, the deploy form 1 + len(stages) + 1.

Channel widths are the reference's scaled by `width` (default 1/8, so vanillanet-5 is
64-128-256-512 instead of 512-...-4096) to keep the default model fast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgec.errors import EdgecError
from edgec.zoo.layers import check_positive, check_resolution
from edgec.zoo.registry import image_input, register

BN_EPS = 1e-6  # the reference's

# depth -> (channels at width 1, block strides), from the reference's vanillanet_5 ... _13.
CONFIGS = {
    5: ([512, 1024, 2048, 4096], [2, 2, 2]),
    6: ([512, 1024, 2048, 4096, 4096], [2, 2, 2, 1]),
    7: ([512, 512, 1024, 2048, 4096, 4096], [1, 2, 2, 2, 1]),
    8: ([512, 512, 1024, 2048, 2048, 4096, 4096], [1, 2, 2, 1, 2, 1]),
    9: ([512, 512, 1024, 2048, 2048, 2048, 4096, 4096], [1, 2, 2, 1, 1, 2, 1]),
    10: ([512, 512, 1024, 2048, 2048, 2048, 2048, 4096, 4096], [1, 2, 2, 1, 1, 1, 2, 1]),
    11: ([512, 512, 1024] + [2048] * 5 + [4096] * 2, [1, 2, 2, 1, 1, 1, 1, 2, 1]),
    12: ([512, 512, 1024] + [2048] * 6 + [4096] * 2, [1, 2, 2, 1, 1, 1, 1, 1, 2, 1]),
    13: ([512, 512, 1024] + [2048] * 7 + [4096] * 2, [1, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1]),
}
STEM_STRIDE = 4


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the conv that computes bn(conv(x)) in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = torch.zeros_like(bn.running_mean) if bias is None else bias
    return weight * scale.reshape(-1, 1, 1, 1), bn.bias + (bias - bn.running_mean) * scale


def merge_1x1_after(first_w: torch.Tensor, first_b: torch.Tensor, second_w: torch.Tensor,
                    second_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of conv2(conv1(x)) for any conv1 followed by a 1x1 conv2 with no
    nonlinearity between: conv2 is a matrix over channels, so it folds into conv1's filters."""
    matrix = second_w.flatten(1)  # (out, mid)
    return torch.einsum("om,mckl->ockl", matrix, first_w), matrix @ first_b + second_b


class SeriesActivation(nn.Module):
    def __init__(self, dim: int, act_num: int):
        super().__init__()
        self.dim = dim
        self.padding = act_num  # keeps the spatial size: kernel is 2*act_num + 1
        self.weight = nn.Parameter(torch.empty(dim, 1, 2 * act_num + 1, 2 * act_num + 1))
        nn.init.trunc_normal_(self.weight, std=0.02)
        self.bias: nn.Parameter | None = None
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(dim, eps=BN_EPS)
        self.deploy = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(F.relu(x), self.weight, self.bias, padding=self.padding, groups=self.dim)
        return x if self.deploy else self.bn(x)

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        weight, bias = fold_bn(self.weight, None, self.bn)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.bn = None
        self.deploy = True


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride),
                         nn.BatchNorm2d(out_channels, eps=BN_EPS))


class Block(nn.Module):
    def __init__(self, dim: int, dim_out: int, act_num: int, stride: int):
        super().__init__()
        self.act_learn = 1.0
        self.deploy = False
        self.conv1 = conv_bn(dim, dim, 1)
        self.conv2 = conv_bn(dim, dim_out, 1)
        self.conv: nn.Conv2d | None = None  # the merged conv, once deployed
        self.pool = nn.Identity() if stride == 1 else nn.MaxPool2d(stride)
        self.act = SeriesActivation(dim_out, act_num)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            x = self.conv(x)
        else:
            x = self.conv2(F.leaky_relu(self.conv1(x), self.act_learn))
        return self.act(self.pool(x))

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        first = fold_bn(self.conv1[0].weight, self.conv1[0].bias, self.conv1[1])
        second = fold_bn(self.conv2[0].weight, self.conv2[0].bias, self.conv2[1])
        self.conv = _conv_with(self.conv2[0], *merge_1x1_after(*first, *second))
        del self.conv1, self.conv2
        self.act.switch_to_deploy()
        self.deploy = True


class VanillaNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, dims: list[int], strides: list[int],
                 act_num: int):
        super().__init__()
        self.deploy = False
        self.act_learn = 1.0
        self.stem1 = conv_bn(in_channels, dims[0], STEM_STRIDE, STEM_STRIDE)
        self.stem2 = nn.Sequential(*conv_bn(dims[0], dims[0], 1), SeriesActivation(dims[0], act_num))
        self.stages = nn.ModuleList(
            Block(dims[i], dims[i + 1], act_num, stride) for i, stride in enumerate(strides)
        )
        self.cls1 = nn.Sequential(nn.AdaptiveAvgPool2d(1), *conv_bn(dims[-1], num_classes, 1))
        self.cls2 = nn.Conv2d(num_classes, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # the reference's init
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    @property
    def classifier(self) -> nn.Conv2d:
        """The layer that emits the logits (calibration re-centres it)."""
        return self.cls[1] if self.deploy else self.cls2

    def set_act_learn(self, value: float) -> None:
        """Set lambda everywhere (the reference's change_act): 0 = ReLU, 1 = identity."""
        self.act_learn = float(value)
        for stage in self.stages:
            stage.act_learn = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            x = self.stem(x)
        else:
            x = self.stem2(F.leaky_relu(self.stem1(x), self.act_learn))
        for stage in self.stages:
            x = stage(x)
        if self.deploy:
            x = self.cls(x)
        else:
            x = self.cls2(F.leaky_relu(self.cls1(x), self.act_learn))
        return torch.flatten(x, 1)

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold every BN and merge each conv pair, as the reference does. Exact only at
        act_learn = 1, where the leaky_relu between the pair is the identity."""
        if self.deploy:
            return
        if self.act_learn != 1.0:
            raise EdgecError(
                f"VanillaNet.switch_to_deploy() needs act_learn = 1 (got {self.act_learn}): "
                "below 1 the activation between the merged convs is not linear"
            )
        stem_first = fold_bn(self.stem1[0].weight, self.stem1[0].bias, self.stem1[1])
        stem_second = fold_bn(self.stem2[0].weight, self.stem2[0].bias, self.stem2[1])
        stem_act = self.stem2[2]
        stem_act.switch_to_deploy()
        self.stem = nn.Sequential(_conv_with(self.stem1[0], *merge_1x1_after(*stem_first, *stem_second)), stem_act)

        for stage in self.stages:
            stage.switch_to_deploy()

        cls_first = fold_bn(self.cls1[1].weight, self.cls1[1].bias, self.cls1[2])
        merged = merge_1x1_after(*cls_first, self.cls2.weight, self.cls2.bias)
        self.cls = nn.Sequential(self.cls1[0], _conv_with(self.cls1[1], *merged))
        del self.stem1, self.stem2, self.cls1, self.cls2
        self.deploy = True


def _conv_with(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    """A conv with `conv`'s geometry (kernel, stride) and the given merged parameters."""
    merged = nn.Conv2d(conv.in_channels, weight.shape[0], conv.kernel_size, conv.stride, conv.padding)
    merged.weight.copy_(weight)
    merged.bias.copy_(bias)
    return merged


@register("vanillanet", "VanillaNet, deep-training form (lambda = act_learn); switch_to_deploy() merges it",
          image_input)
def vanillanet(*, num_classes: int = 1000, resolution: int = 224, in_channels: int = 3,
               depth: int = 5, width: float = 0.125, act_num: int = 3, act_learn: float = 1.0) -> nn.Module:
    if depth not in CONFIGS:
        raise EdgecError(f"zoo model 'vanillanet': depth must be one of {sorted(CONFIGS)}, got {depth}")
    check_positive("vanillanet", num_classes=num_classes, in_channels=in_channels, width=width,
                   act_num=act_num)
    if not 0.0 <= act_learn <= 1.0:
        raise EdgecError(f"zoo model 'vanillanet': act_learn (lambda) must be in [0, 1], got {act_learn}")
    dims, strides = CONFIGS[depth]
    total_stride = STEM_STRIDE
    for stride in strides:
        total_stride *= stride
    # The max pools floor odd sizes away; requiring exact division keeps every pixel in play.
    check_resolution("vanillanet", resolution, total_stride, f"the stem and pools of vanillanet-{depth} "
                     f"divide it by {total_stride}")
    model = VanillaNet(in_channels, num_classes, [max(1, round(d * width)) for d in dims], strides, act_num)
    model.set_act_learn(act_learn)
    return model
