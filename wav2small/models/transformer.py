"""Transformer pieces of the attention students (EfficientFormer's 3D blocks, T2T-ViT's backbone):
multi-head self-attention over tokens and the pre-norm block around it.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention over (B, N, dim) tokens with ``key_dim`` per head for queries and
    keys and ``value_dim`` per head for values (equal in ViT; EfficientFormer's values are wider).

    Written as plain matrix products and a softmax so that every exporter keeps them (and ONNX
    footprints count their multiply-accumulates).
    """

    def __init__(self, dim: int, heads: int, key_dim: int, value_dim: int, *, qkv_bias: bool = True):
        super().__init__()
        self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
        self.scale = key_dim ** -0.5
        self.qkv = nn.Linear(dim, heads * (2 * key_dim + value_dim), bias=qkv_bias)
        self.proj = nn.Linear(heads * value_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n = x.shape[:2]
        qkv = self.qkv(x).reshape(b, n, self.heads, -1).transpose(1, 2)  # (B, heads, N, 2 k + v)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.value_dim], dim=3)
        weights = torch.softmax(torch.matmul(q, k.transpose(2, 3)) * self.scale, dim=-1)  # (B, heads, N, N)
        out = torch.matmul(weights, v).transpose(1, 2).reshape(b, n, self.heads * self.value_dim)
        return self.proj(out)


class Mlp(nn.Sequential):
    """Linear -> GELU -> Linear on the last axis."""

    def __init__(self, dim: int, hidden: int, out: int | None = None):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, out or dim))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + s1 * attention(LN(x)), then + s2 * MLP(LN(x)); ``layer_scale`` (the
    initial value of the per-channel factors s, EfficientFormer's 1e-5) or None for plain ViT."""

    def __init__(self, dim: int, heads: int, key_dim: int, value_dim: int, *, mlp_ratio: float, qkv_bias: bool = True,
                 layer_scale: float | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, key_dim, value_dim, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if layer_scale is None:
            self.scale1 = self.scale2 = None
        else:
            self.scale1 = nn.Parameter(torch.full((dim,), layer_scale))
            self.scale2 = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, dim)
        y = self.attn(self.norm1(x))
        x = x + (y if self.scale1 is None else self.scale1 * y)
        y = self.mlp(self.norm2(x))
        return x + (y if self.scale2 is None else self.scale2 * y)


def sinusoid_table(positions: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine position code of "Attention is all you need": (positions, dim)."""
    position = torch.arange(positions, dtype=torch.float64)[:, None]
    rate = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    table = torch.zeros(positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return table.float()


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) Linear weights and zero biases, unit LayerNorms: the ViT recipe."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
