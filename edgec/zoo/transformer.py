"""A pre-norm transformer encoder block, alone (`transformer_block`) or in a tiny ViT (`vit_tiny`).

Attention is written with Linear, matmul and softmax rather than nn.MultiheadAttention, whose
export goes through a fused op and reshapes that obscure the graph: this way the ONNX holds
only MatMul/Softmax/Transpose/Reshape that every backend lowers.
"""

from __future__ import annotations

import torch
from torch import nn

from edgec.errors import EdgecError
from edgec.zoo.layers import check_positive
from edgec.zoo.registry import image_input, register, token_input


class SelfAttention(nn.Module):
    """Multi-head self-attention. Separate q/k/v projections rather than one fused qkv Linear:
    a fused one needs a Split or Gather and a 5-D transpose to pull the three apart."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        return x.reshape(batch, tokens, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        q = self._split_heads(self.query(x) * self.scale)  # (batch, heads, tokens, head_dim)
        k = self._split_heads(self.key(x))
        v = self._split_heads(self.value(x))
        attention = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        out = (attention @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out)


class TransformerBlock(nn.Module):
    """x + attn(LN(x)), then x + MLP(LN(x)) with a GELU MLP of `mlp_ratio` x width."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_transformer(module: nn.Module) -> None:
    """LeCun-normal linears (std 1/sqrt(fan_in)), zero biases.

    Not ViT's trained-from-scratch init (std 0.02): with it every residual branch adds ~2% to
    its input, so a random block is nearly the identity and verifying it would not notice a
    broken attention. With unit-gain linears each branch is as large as the stream it joins,
    and the attention logits have unit spread, so the softmax is far from uniform.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=m.in_features ** -0.5)
            nn.init.zeros_(m.bias)


class TokenClassifierHead(nn.Module):
    """LayerNorm, mean over tokens, linear: the head both models use when asked for classes."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(x).mean(dim=1))


class TransformerEncoder(nn.Module):
    """(1, seq, dim) -> blocks -> (1, seq, dim), or (1, num_classes) with a head."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, depth: int, num_classes: int | None):
        super().__init__()
        self.blocks = nn.Sequential(*(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth)))
        self.head = TokenClassifierHead(dim, num_classes) if num_classes else None
        # Calibration standardises the logits through this attribute (None: no logits).
        self.classifier = self.head.classifier if self.head is not None else None
        init_transformer(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        return self.head(x) if self.head is not None else x


class VisionTransformer(nn.Module):
    """Patch embedding (a strided conv), learned position embedding, blocks, mean-pool head.

    Mean pooling instead of a class token: no Concat/Expand of a learned token in the graph.
    """

    def __init__(self, num_classes: int, resolution: int, in_channels: int, patch: int, dim: int,
                 depth: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.patch_embed = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.empty(1, (resolution // patch) ** 2, dim))
        self.encoder = TransformerEncoder(dim, heads, mlp_ratio, depth, num_classes)
        self.classifier = self.encoder.classifier
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # (batch, patches, dim)
        return self.encoder(tokens + self.pos_embed)


def _check_heads(model: str, dim: int, heads: int) -> None:
    check_positive(model, dim=dim, heads=heads)
    if dim % heads:
        raise EdgecError(f"zoo model '{model}': dim ({dim}) must be divisible by heads ({heads})")


@register("transformer_block", "one pre-norm transformer encoder block on (1, seq_len, dim); "
          "num_classes adds a mean-pool linear head", token_input)
def transformer_block(*, num_classes: int | None = None, seq_len: int = 64, dim: int = 128, heads: int = 4,
                      mlp_ratio: int = 4, depth: int = 1) -> nn.Module:
    _check_heads("transformer_block", dim, heads)
    check_positive("transformer_block", seq_len=seq_len, mlp_ratio=mlp_ratio, depth=depth)
    if num_classes is not None:
        check_positive("transformer_block", num_classes=num_classes)
    return TransformerEncoder(dim, heads, mlp_ratio, depth, num_classes)


@register("vit_tiny", "ViT-Tiny-shaped vision transformer: patch embedding, encoder blocks, mean-pool head",
          image_input)
def vit_tiny(*, num_classes: int = 1000, resolution: int = 224, in_channels: int = 3, patch: int = 16,
             dim: int = 192, depth: int = 12, heads: int = 3, mlp_ratio: int = 4) -> nn.Module:
    _check_heads("vit_tiny", dim, heads)
    check_positive("vit_tiny", num_classes=num_classes, in_channels=in_channels, patch=patch,
                   depth=depth, mlp_ratio=mlp_ratio)
    if resolution <= 0 or resolution % patch:
        raise EdgecError(f"zoo model 'vit_tiny': resolution ({resolution}) must be a positive multiple "
                         f"of patch ({patch})")
    return VisionTransformer(num_classes, resolution, in_channels, patch, dim, depth, heads, mlp_ratio)
